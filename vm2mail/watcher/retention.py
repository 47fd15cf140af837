"""Retention: old voicemails move to Trash; Trash is emptied of the voicemails after ``trash_days``."""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from vm2mail.config.model import Mailbox
from vm2mail.mailstore.connection import ImapConnection
from vm2mail.mailstore.folders import quote
from vm2mail.mailstore.view import FolderView
from vm2mail.mailstore.voicemails import KINDS, uid_set

if TYPE_CHECKING:
    from vm2mail.watcher.watcher import Watcher

log = logging.getLogger(__name__)

# Keyword stamped on a voicemail when it reaches Trash, with the UTC day: "$Vm2mailTrashed_20261123".
# INTERNALDATE survives MOVE, so it cannot tell how long a message has been in Trash; the stamp can.
TRASHED = "$Vm2mailTrashed_"
_TRASHED_DAY = re.compile(r"^\$Vm2mailTrashed_(\d{8})$")


def utc_today() -> date:
    return datetime.now(UTC).date()


def trashed_keyword(day: date) -> str:
    return f"{TRASHED}{day:%Y%m%d}"


def trashed_on(flags: frozenset[str] | set[str]) -> date | None:
    days = [datetime.strptime(m.group(1), "%Y%m%d").date() for f in flags if (m := _TRASHED_DAY.match(f))]
    return min(days) if days else None


def imap_date(day: date) -> str:
    """RFC 3501 §9 date: ``1-Feb-2026`` (month names are English whatever the locale)."""
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    return f"{day.day}-{months[day.month - 1]}-{day.year}"


async def find_trash(conn: ImapConnection) -> str:
    """The account's ``\\Trash`` folder (RFC 6154 SPECIAL-USE), else "Trash" (created if missing)."""
    found = await conn.special_trash()
    if found is not None:
        return found
    await conn.create("Trash", strict=False)
    return "Trash"


async def expire(
    watcher: Watcher, conn: ImapConnection, mailbox: Mailbox, state: FolderView, trash: str
) -> list[int]:
    """Move voicemails older than ``retention_days`` (by INTERNALDATE) to ``trash``; their old UIDs.

    Runs on the watching session's connection with the folder selected. Only voicemails the gateway
    delivered (X-Vm2mail-Kind) are candidates; ``\\Flagged`` ones stay while ``keep_saved`` is on.
    """
    if mailbox.retention_days is None:
        return []
    cutoff = utc_today() - timedelta(days=mailbox.retention_days)
    # RFC 3501 §6.4.4: BEFORE compares the INTERNALDATE's date, disregarding time and timezone.
    old = [
        uid
        for uid in await conn.uid_search("BEFORE", imap_date(cutoff))
        if (entry := state.entries.get(uid)) is not None
        and entry.kind in KINDS
        and not (mailbox.keep_saved and entry.saved)
    ]
    if not old:
        return []
    uids = uid_set(old)
    await conn.uid_store(uids, "+FLAGS.SILENT", (trashed_keyword(utc_today()),))
    for uid in old:
        watcher.note_move(mailbox.id, uid)
    # RFC 6851 UID MOVE keeps the flags, so the stamp arrives in Trash with the message.
    await conn.uid_move(uids, trash)
    log.info(
        "mailbox %s: %d voicemail(s) older than %d days moved to %r",
        mailbox.id,
        len(old),
        mailbox.retention_days,
        trash,
    )
    return old


async def empty_trash(conn: ImapConnection, mailbox: Mailbox, trash: str) -> int:
    """Expunge from Trash the voicemails stamped more than ``trash_days`` ago; stamp unstamped ones.

    A voicemail a user (or the phone menu) deleted has no stamp yet: it gets today's, so it stays
    recoverable for ``trash_days`` from now. Messages without X-Vm2mail-Kind are never touched.
    Runs on the watching session's connection: it SELECTs Trash, and the caller selects its folder again.
    """
    keep_days = mailbox.trash_days
    if keep_days is None:
        return 0
    today = utc_today()
    await conn.select(trash)
    # RFC 3501 §6.4.4: HEADER with an empty string matches every message that has the field.
    uids = await conn.uid_search("HEADER", "X-Vm2mail-Kind", quote(""))
    if not uids:
        return 0
    unstamped: list[int] = []
    expired: list[int] = []
    for uid, record in (await conn.uid_fetch(uid_set(uids), "(UID FLAGS)")).items():
        if record.flags is None:
            continue
        day = trashed_on(record.flags)
        if day is None:
            unstamped.append(uid)
        elif (today - day).days >= keep_days:
            expired.append(uid)
    if unstamped:
        await conn.uid_store(uid_set(unstamped), "+FLAGS.SILENT", (trashed_keyword(today),))
    if expired:
        await conn.uid_store(uid_set(expired), "+FLAGS.SILENT", ("\\Deleted",))
        # RFC 4315 §2.1: UID EXPUNGE removes only these, never other \\Deleted mail of the user.
        await conn.uid_expunge(uid_set(expired))
        log.info(
            "mailbox %s: %d voicemail(s) expunged from %r after %d days",
            mailbox.id,
            len(expired),
            trash,
            keep_days,
        )
    return len(expired)
