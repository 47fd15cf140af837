"""Claim a voicemail for one notification with an RFC 7162 conditional STORE, so only one instance sends."""

from __future__ import annotations

import logging

from vm2mail.config.model import Mailbox
from vm2mail.mailstore.connection import ImapConnection
from vm2mail.mailstore.store import ImapStore, Pool
from vm2mail.mailstore.voicemails import SEEN

log = logging.getLogger(__name__)


async def claim(
    store: ImapStore,
    mailbox: Mailbox,
    folder: str,
    uid: int,
    flags: tuple[str, ...],
    *,
    unseen: bool = True,
) -> bool:
    """Set ``flags`` on ``uid`` unless another session set any of them (or ``\\Seen``) first.

    RFC 7162 §3.1.3: ``UID STORE uid (UNCHANGEDSINCE m) +FLAGS.SILENT (...)`` succeeds only when the
    message's mod-sequence is still ``m``, the one read together with its flags. Two gateways racing
    for the same voicemail both read ``m``; the server applies the first STORE (raising the
    mod-sequence) and answers the second with ``[MODIFIED uid]``. True: this caller owns the notice
    and must send it. A user marking the message seen between our read and our STORE also makes the
    STORE fail, so a reminder for a message just heard is never sent.

    Without CONDSTORE the STORE is unconditional (still at most once per instance, but two instances
    could both send): the log says so.
    """

    async def op(conn: ImapConnection, pool: Pool) -> bool:
        await store.select(conn, pool, folder)
        condstore = conn.has_capability("CONDSTORE")
        fetch_items = "(UID FLAGS MODSEQ)" if condstore else "(UID FLAGS)"
        record = (await conn.uid_fetch(str(uid), fetch_items)).get(uid)
        if record is None:
            return False  # expunged or moved away since the listing
        current, modseq = record.flags or frozenset(), record.modseq
        if any(flag in current for flag in flags) or (unseen and SEEN in current):
            return False  # another instance (or the user) got there first
        if modseq is None:
            log.warning("IMAP %s: no CONDSTORE; claiming %s uid=%d unconditionally", conn.where, folder, uid)
        if not await conn.uid_store(str(uid), "+FLAGS.SILENT", flags, unchanged_since=modseq):
            log.info("IMAP %s: %s uid=%d changed meanwhile; not claimed", conn.where, folder, uid)
            return False
        return True

    return await store.run(mailbox, op)


async def release(store: ImapStore, mailbox: Mailbox, folder: str, uid: int, flags: tuple[str, ...]) -> None:
    """Take back a claim after nothing could be sent, so the next scan tries again."""

    async def op(conn: ImapConnection, pool: Pool) -> None:
        await store.select(conn, pool, folder)
        if not await conn.uid_store(str(uid), "-FLAGS.SILENT", flags, refused_ok=True):
            log.warning("IMAP %s: release of %s uid=%d refused", conn.where, folder, uid)

    await store.run(mailbox, op)
