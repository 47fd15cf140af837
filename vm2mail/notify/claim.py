"""Claim a voicemail notice exclusively across gateway instances with marker messages in a hidden folder.

Why not a conditional STORE: RFC 7162 promises that of two ``UID STORE (UNCHANGEDSINCE m)`` on one
message only the first succeeds, but Dovecot 2.3 answers two simultaneous ones both with OK and no
``[MODIFIED]`` (``bench/claims.py``: 12 and 8 double claims in 1,000 two-process races), so two gateways
sent the same SMS. IMAP METADATA (RFC 5464) has no compare-and-set at all. A CREATE per claim would
be exclusive only as far as the storage's mkdir is, and would litter the account with folders. What
IMAP itself guarantees is that a mailbox assigns UIDs in strictly increasing order (RFC 3501
§2.3.1.1) and that a message whose APPEND completed is seen by every later SEARCH after a sync (NOOP,
RFC 3501 §6.1.2).

The claim: each claimant APPENDs a small marker message whose Message-ID is the claim key (voicemail
+ the first keyword of the notice: ``$Vm2mailNotified`` or ``$Vm2mailReminded<k>``) to the hidden,
unsubscribed folder ``CLAIMS_FOLDER`` of the voicemail's account, then, after its APPEND completed,
UID SEARCHes for the key: the marker with the lowest UID wins. Two claimants A < B: B's APPEND
completed after A's was committed (its UID is higher), so B's search sees A's marker and B loses;
A sees its own marker as the lowest (B's, if visible, is higher) and wins. A claimant that finds no
marker of its own (removed meanwhile by a ``release``) loses; the next scan tries again. Losers
expunge their own marker (UIDPLUS UID EXPUNGE touches nothing else). ``tests/notify/test_claim_race``
races two processes 300 times against Dovecot and sees exactly one winner every round (the bench: 0
double claims in 1,000 rounds, 980 of which had both markers appended).

The winner then sets the notice's keywords on the voicemail, so every instance's next listing skips
it; markers are only the tie-breaker and are pruned after ``KEEP_DAYS`` (a claim re-taken after that
would need a listing days old). ``release`` removes both after nothing could be sent, and an IMAP
error before the keywords are set takes the claim back. Only a crash between winning and setting the
keywords leaves a marker that blocks the notice until pruned: lost rather than sent twice, the same
trade-off as between claim and send. Taking over a marker that looks abandoned was left out on
purpose: a paused (not dead) winner would then send too.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import secrets
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from vm2mail.config.model import Mailbox
from vm2mail.errors import MailStoreError
from vm2mail.mailstore.connection import ImapConnection
from vm2mail.mailstore.folders import quote
from vm2mail.mailstore.store import ImapStore, Pool
from vm2mail.mailstore.voicemails import SEEN

log = logging.getLogger(__name__)

# Top level and unsubscribed: mail clients that show subscribed folders hide it.
CLAIMS_FOLDER = "Vm2mail-Claims"
KEEP_DAYS = 3  # markers older than this are pruned (the keywords on the voicemail are the lasting record)
CLAIMANT = "X-Vm2mail-Claimant"  # marker header with a nonce per claim attempt


def claim_key(folder: str, message_id: str | None, uid: int, first_flag: str) -> str:
    """The marker's Message-ID for one notice of one voicemail: the same on every instance."""
    subject = message_id or f"uid:{uid}"  # a voicemail without Message-ID: its UID (stable in place)
    digest = hashlib.sha256(f"{folder}\0{subject}".encode()).hexdigest()[:32]
    label = re.sub(r"[^a-z0-9]", "", first_flag.lower()) or "claim"
    return f"<{label}.{digest}@claims.vm2mail.invalid>"


def _marker(key: str, nonce: str, what: str) -> bytes:
    # Plain ASCII headers only; the nonce tells a claimant its own marker on a server without UIDPLUS.
    return (
        f"From: vm2mail <claims@vm2mail.invalid>\r\n"
        f"Date: {format_datetime(datetime.now(UTC))}\r\n"
        f"Message-ID: {key}\r\n"
        f"Subject: vm2mail notification claim\r\n"
        f"{CLAIMANT}: {nonce}\r\n"
        f"\r\n"
        f"{what}\r\n"
    ).encode("ascii", "replace")


async def _select_claims(conn: ImapConnection, pool: Pool, *, create: bool = True) -> bool:
    """Select (and sync) the claims folder, creating it unsubscribed when missing; False: none there."""
    if conn.selected == CLAIMS_FOLDER:
        await conn.noop()  # sync: see markers appended by others
        return True
    if not await conn.select(CLAIMS_FOLDER, missing_ok=True):
        if not create:
            return False
        # No SUBSCRIBE (unlike ImapStore.ensure_folder): the folder is bookkeeping, not mail to read.
        await conn.create(CLAIMS_FOLDER, subscribe=False)  # [ALREADYEXISTS] is fine, other refusals raise
        await conn.select(CLAIMS_FOLDER)
    pool.folders.add(CLAIMS_FOLDER)
    return True


async def _search(conn: ImapConnection, key: str, header: str = "Message-ID") -> list[int]:
    # RFC 3501 §6.4.4: HEADER matches a substring; the angle brackets make that an exact match.
    return await conn.uid_search("HEADER", header, quote(key))


async def _expunge(conn: ImapConnection, uids: list[int]) -> None:
    """Remove exactly ``uids`` (RFC 4315 UID EXPUNGE); without UIDPLUS they stay until pruned."""
    if not uids or not conn.has_capability("UIDPLUS"):
        return
    where = ",".join(str(u) for u in uids)
    await conn.uid_store(where, "+FLAGS.SILENT", ("\\Deleted",))
    await conn.uid_expunge(where)


async def take(store: ImapStore, mailbox: Mailbox, key: str, what: str = "") -> bool:
    """Whether this caller holds claim ``key``: its marker is the lowest-UID one (see the docstring)."""
    nonce = secrets.token_hex(12)  # one per take: a retried attempt recognises what the first appended
    attempts = 0

    async def op(conn: ImapConnection, pool: Pool) -> bool:
        nonlocal attempts
        attempts += 1
        await _select_claims(conn, pool)
        found = await _search(conn, key)
        if found:
            if attempts == 1:
                return False  # decided already: no need to append
            # ImapStore.run retried after a dropped connection: our first APPEND may have landed.
            mine = await _search(conn, nonce, CLAIMANT)
            return bool(mine) and min(found) in mine
        ours = await conn.append(CLAIMS_FOLDER, _marker(key, nonce, what), flags=(SEEN,))
        await conn.noop()  # our APPEND completed: now sync and look
        found = await _search(conn, key)
        if ours is None:  # no UIDPLUS (RFC 4315): find our marker by its nonce
            ours = min(await _search(conn, nonce, CLAIMANT), default=None)
        if found and min(found) == ours:
            return True
        if ours in found:
            await _expunge(conn, [ours])  # lost: tidy up our marker only
        log.debug("claim %s: an earlier marker won", key)
        return False

    try:
        return await store.run(mailbox, op, folder=CLAIMS_FOLDER)
    except MailStoreError:
        # Unknown outcome: a marker of ours left behind would block the notice until pruned. Taking it
        # back is always safe (whoever saw it lower has already lost); the next scan claims again.
        with contextlib.suppress(MailStoreError):
            await give_back(store, mailbox, nonce, header=CLAIMANT)
        raise


async def give_back(store: ImapStore, mailbox: Mailbox, key: str, *, header: str = "Message-ID") -> None:
    """Remove every marker of claim ``key`` (or, by ``CLAIMANT``, one claimant's) so it can be taken again."""

    async def op(conn: ImapConnection, pool: Pool) -> None:
        await _select_claims(conn, pool)
        await _expunge(conn, await _search(conn, key, header))

    await store.run(mailbox, op, folder=CLAIMS_FOLDER)


async def prune(store: ImapStore, mailbox: Mailbox, *, keep_days: int = KEEP_DAYS) -> int:
    """Remove markers appended more than ``keep_days`` ago; how many went (no folder: nothing to do)."""
    # RFC 3501 §6.4.4 BEFORE compares the internal date (the APPEND time) by day.
    before = (datetime.now(UTC) - timedelta(days=keep_days)).strftime("%d-%b-%Y")

    async def op(conn: ImapConnection, pool: Pool) -> int:
        if not await _select_claims(conn, pool, create=False):
            return 0  # nothing ever claimed in this account: do not create the folder for it
        uids = await conn.uid_search("BEFORE", before)
        await _expunge(conn, uids)
        return len(uids)

    return await store.run(mailbox, op, folder=CLAIMS_FOLDER)


async def claim(
    store: ImapStore,
    mailbox: Mailbox,
    folder: str,
    uid: int,
    message_id: str | None,
    flags: tuple[str, ...],
    *,
    unseen: bool = True,
) -> bool:
    """Claim the notice ``flags`` (its keywords, first one naming it) of voicemail ``uid`` in ``folder``.

    True: this caller alone owns the notice and must send it; the keywords are set on the voicemail.
    False: another instance owns it, or the voicemail is gone, already carries a keyword of the notice,
    or (with ``unseen``) was heard meanwhile, so a reminder for a message just heard is not sent.
    """
    key = claim_key(folder, message_id, uid, flags[0])
    if not await take(store, mailbox, key, f"{folder} uid={uid} {' '.join(flags)}"):
        return False

    async def op(conn: ImapConnection, pool: Pool) -> bool:
        await store.select(conn, pool, folder)
        record = (await conn.uid_fetch(str(uid), "(UID FLAGS)")).get(uid)
        current = None if record is None else (record.flags or frozenset())
        if current is None or any(f in current for f in flags) or (unseen and SEEN in current):
            return False  # gone, heard, or recorded already: the marker stays, nothing is sent
        await conn.uid_store(str(uid), "+FLAGS.SILENT", flags)
        return True

    try:
        return await store.run(mailbox, op, folder=folder)
    except MailStoreError:
        # Claimed but not recorded (or the answer lost): free the claim so the next scan tries again;
        # if the keywords did land, that scan skips the voicemail anyway.
        with contextlib.suppress(MailStoreError):
            await give_back(store, mailbox, key)
        raise


async def release(
    store: ImapStore, mailbox: Mailbox, folder: str, uid: int, message_id: str | None, flags: tuple[str, ...]
) -> None:
    """Take back a claim after nothing could be sent, so the next scan tries again."""

    async def op(conn: ImapConnection, pool: Pool) -> None:
        await store.select(conn, pool, folder)
        if not await conn.uid_store(str(uid), "-FLAGS.SILENT", flags, refused_ok=True):
            log.warning("IMAP %s: release of %s uid=%d refused", conn.where, folder, uid)

    # Keywords first: while they are set nobody tries; once the markers go, the next claim can win.
    await store.run(mailbox, op, folder=folder)
    await give_back(store, mailbox, claim_key(folder, message_id, uid, flags[0]))
