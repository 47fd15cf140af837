"""Claim a voicemail for one notification with an RFC 7162 conditional STORE, so only one instance sends."""

from __future__ import annotations

import logging
import re

from vm2mail.config.model import Mailbox
from vm2mail.mailstore.connection import ImapConnection, response_text
from vm2mail.mailstore.store import ImapStore, Pool
from vm2mail.mailstore.voicemails import SEEN

log = logging.getLogger(__name__)

_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)", re.IGNORECASE)
_MODSEQ = re.compile(rb"MODSEQ \((\d+)\)", re.IGNORECASE)
_UID = re.compile(rb"UID (\d+)", re.IGNORECASE)
_MODIFIED = re.compile(rb"\[MODIFIED ", re.IGNORECASE)


def _state(lines: list[bytes], uid: int) -> tuple[frozenset[str], int | None] | None:
    """(flags, modseq) of ``uid`` from untagged FETCH lines; None when the message is gone."""
    for raw in lines:
        line = bytes(raw)
        match = _UID.search(line)
        if match is None or int(match.group(1)) != uid:
            continue
        flags = _FLAGS.search(line)
        modseq = _MODSEQ.search(line)
        return (
            frozenset(flags.group(1).decode("ascii", "replace").split()) if flags else frozenset(),
            int(modseq.group(1)) if modseq else None,
        )
    return None


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
    items = " ".join(flags)

    async def op(conn: ImapConnection, pool: Pool) -> bool:
        await store.select(conn, pool, folder)
        condstore = conn.has_capability("CONDSTORE")
        fetch_items = "(UID FLAGS MODSEQ)" if condstore else "(UID FLAGS)"
        response = await conn.command(conn.client.uid("fetch", str(uid), fetch_items), "UID FETCH")
        state = _state(response.lines[:-1], uid)
        if state is None:
            return False  # expunged or moved away since the listing
        current, modseq = state
        if any(flag in current for flag in flags) or (unseen and SEEN in current):
            return False  # another instance (or the user) got there first
        if modseq is None:
            log.warning("IMAP %s: no CONDSTORE; claiming %s uid=%d unconditionally", conn.where, folder, uid)
            args: tuple[str, ...] = (str(uid), "+FLAGS.SILENT", f"({items})")
        else:
            args = (str(uid), f"(UNCHANGEDSINCE {modseq})", "+FLAGS.SILENT", f"({items})")
        response = await conn.command(conn.client.uid("store", *args), "UID STORE (claim)")
        if any(_MODIFIED.search(bytes(line)) for line in response.lines):
            log.info("IMAP %s: %s uid=%d changed meanwhile; not claimed", conn.where, folder, uid)
            return False
        return True

    return await store.run(mailbox, op)


async def release(store: ImapStore, mailbox: Mailbox, folder: str, uid: int, flags: tuple[str, ...]) -> None:
    """Take back a claim after nothing could be sent, so the next scan tries again."""

    async def op(conn: ImapConnection, pool: Pool) -> None:
        await store.select(conn, pool, folder)
        response = await conn.command(
            conn.client.uid("store", str(uid), "-FLAGS.SILENT", f"({' '.join(flags)})"),
            "UID STORE (release)",
            ok=("OK", "NO"),
        )
        if response.result != "OK":
            log.warning(
                "IMAP %s: release of %s uid=%d refused: %s", conn.where, folder, uid, response_text(response)
            )

    await store.run(mailbox, op)
