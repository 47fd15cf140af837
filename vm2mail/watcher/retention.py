"""Retention: old voicemails move to Trash; Trash is emptied of the voicemails after ``trash_days``."""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from vm2mail.config.model import Mailbox
from vm2mail.mailstore.connection import ImapConnection, search_uids
from vm2mail.mailstore.folders import quote, wire_mailbox
from vm2mail.mailstore.voicemails import KINDS, special_trash, uid_set
from vm2mail.watcher.state import FolderState

if TYPE_CHECKING:
    from vm2mail.watcher.watcher import Watcher

log = logging.getLogger(__name__)

# Keyword stamped on a voicemail when it reaches Trash, with the UTC day: "$Vm2mailTrashed_20261123".
# INTERNALDATE survives MOVE, so it cannot tell how long a message has been in Trash; the stamp can.
TRASHED = "$Vm2mailTrashed_"
_TRASHED_DAY = re.compile(r"^\$Vm2mailTrashed_(\d{8})$")
_FLAGS_LINE = re.compile(
    rb"^\d+ FETCH \(.*?\bUID (\d+).*?\bFLAGS \(([^)]*)\)|^\d+ FETCH \(.*?\bFLAGS \(([^)]*)\).*?\bUID (\d+)"
)


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
    found = await special_trash(conn)
    if found is not None:
        return found
    name = wire_mailbox("Trash", conn.delimiter)
    created = await conn.command(conn.client.create(name), "CREATE Trash", ok=("OK", "NO"))
    if created.result == "OK":
        await conn.command(conn.client.subscribe(name), "SUBSCRIBE Trash")
    return "Trash"


async def expire(
    watcher: Watcher, conn: ImapConnection, mailbox: Mailbox, state: FolderState, trash: str
) -> list[int]:
    """Move voicemails older than ``retention_days`` (by INTERNALDATE) to ``trash``; their old UIDs.

    Runs on the watching session's connection with the folder selected. Only voicemails the gateway
    delivered (X-Vm2mail-Kind) are candidates; ``\\Flagged`` ones stay while ``keep_saved`` is on.
    """
    if mailbox.retention_days is None:
        return []
    cutoff = utc_today() - timedelta(days=mailbox.retention_days)
    # RFC 3501 §6.4.4: BEFORE compares the INTERNALDATE's date, disregarding time and timezone.
    response = await conn.command(
        conn.client.uid_search("BEFORE", imap_date(cutoff), charset=None), "UID SEARCH BEFORE"
    )
    old = [
        uid
        for uid in search_uids(response)
        if (entry := state.entries.get(uid)) is not None
        and entry.kind in KINDS
        and not (mailbox.keep_saved and entry.saved)
    ]
    if not old:
        return []
    uids = uid_set(old)
    await conn.command(
        conn.client.uid("store", uids, "+FLAGS.SILENT", f"({trashed_keyword(utc_today())})"), "UID STORE"
    )
    for uid in old:
        watcher.note_move(mailbox.id, uid)
    # RFC 6851 UID MOVE keeps the flags, so the stamp arrives in Trash with the message.
    await conn.command(conn.client.uid("move", uids, wire_mailbox(trash, conn.delimiter)), "UID MOVE")
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
    conn.selected = None
    await conn.command(conn.client.select(wire_mailbox(trash, conn.delimiter)), f"SELECT {trash!r}")
    # RFC 3501 §6.4.4: HEADER with an empty string matches every message that has the field.
    found = await conn.command(
        conn.client.uid_search("HEADER", "X-Vm2mail-Kind", quote(""), charset=None), "UID SEARCH"
    )
    uids = search_uids(found)
    if not uids:
        return 0
    response = await conn.command(conn.client.uid("fetch", uid_set(uids), "(UID FLAGS)"), "UID FETCH")
    unstamped: list[int] = []
    expired: list[int] = []
    for line in response.lines[:-1]:
        match = _FLAGS_LINE.match(bytes(line))
        if match is None:
            continue
        uid = int(match.group(1) or match.group(4))
        flags = set((match.group(2) or match.group(3)).decode("ascii", "replace").split())
        day = trashed_on(flags)
        if day is None:
            unstamped.append(uid)
        elif (today - day).days >= keep_days:
            expired.append(uid)
    if unstamped:
        await conn.command(
            conn.client.uid("store", uid_set(unstamped), "+FLAGS.SILENT", f"({trashed_keyword(today)})"),
            "UID STORE",
        )
    if expired:
        await conn.command(
            conn.client.uid("store", uid_set(expired), "+FLAGS.SILENT", "(\\Deleted)"), "UID STORE"
        )
        # RFC 4315 §2.1: UID EXPUNGE removes only these, never other \\Deleted mail of the user.
        await conn.command(conn.client.uid("expunge", uid_set(expired)), "UID EXPUNGE")
        log.info(
            "mailbox %s: %d voicemail(s) expunged from %r after %d days",
            mailbox.id,
            len(expired),
            trash,
            keep_days,
        )
    return len(expired)
