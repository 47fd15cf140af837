"""A folder's voicemails as the gateway reads them: header fields and flags parsed from UID FETCH."""

from __future__ import annotations

import functools
import logging
import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.header import decode_header, make_header
from email.utils import parsedate_to_datetime

from vm2mail.mailstore.protocol import NO_FLAGS, Fetched
from vm2mail.mailstore.protocol import parse_fetch as fetch_records

log = logging.getLogger(__name__)

SEEN = "\\Seen"
FLAGGED = "\\Flagged"
DELETED = "\\Deleted"
# IMAP keywords (RFC 3501 §2.3.2 flag-keyword) the gateway sets; other clients show or ignore them.
NOTIFIED = "$Vm2mailNotified"  # the new-voicemail notification went out (never twice)
REMINDED = "$Vm2mailReminded"  # prefix: "$Vm2mailReminded1", "...2": reminders sent so far
HANDLED = "$Vm2mailHandled"  # group copy: another member heard/deleted it (see X-Vm2mail-Handled-By)
# Header fields fetched for a listing (BODY.PEEK[HEADER.FIELDS (...)]): never bodies.
LIST_HEADERS = (
    "Message-ID",
    "Date",
    "Content-Type",
    "X-Vm2mail-Kind",
    "X-Vm2mail-Caller",
    "X-Vm2mail-Caller-Name",
    "X-Vm2mail-Called",
    "X-Vm2mail-Duration",
    "X-Vm2mail-Mailbox",
    "X-Vm2mail-Call-Id",
    "X-Asterisk-VM-Caller-ID-Num",
    "X-Asterisk-VM-Caller-ID-Name",
    "X-Asterisk-VM-Duration",
    "X-Asterisk-VM-Orig-date",
    "X-Asterisk-VM-Message-Num",
)
FETCH_ITEMS = f"(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS ({' '.join(LIST_HEADERS)})])"
KINDS = ("voicemail", "missed-call")
_NO_CALLER = ("", "anonymous", "unknown", "<unknown>", "restricted", "private")


# slots: a gateway keeps one Entry per voicemail (100,000 and more): no per-instance dict for the
# garbage collector to walk on each full pass (those passes stall the event loop).
@dataclass(frozen=True, kw_only=True, slots=True)
class Entry:
    """One voicemail in a folder, as its header fields and flags describe it."""

    uid: int
    flags: frozenset[str]
    message_id: str | None
    kind: str  # "voicemail" | "missed-call" (X-Vm2mail-Kind) | "asterisk" (X-Asterisk-VM-*)
    caller: str | None  # E.164 or None when withheld
    caller_name: str | None
    called: str | None
    mailbox: str | None  # X-Vm2mail-Mailbox: the mailbox that was called (a group for group copies)
    call_id: str | None
    date: datetime  # aware: the recording start (Date header, else INTERNALDATE)
    duration: int | None  # seconds
    encrypted: bool  # multipart/encrypted (PGP/MIME)
    size: int  # RFC822.SIZE

    @property
    def new(self) -> bool:
        return SEEN not in self.flags

    @property
    def saved(self) -> bool:
        return FLAGGED in self.flags


@dataclass(frozen=True, kw_only=True)
class Listing:
    """A folder's voicemails, oldest first, and the folder state they were read at."""

    folder: str
    uidvalidity: int
    highestmodseq: int | None  # RFC 7162 CONDSTORE, None when the server lacks it
    entries: tuple[Entry, ...]
    # Known counts (the reader keeps them up to date from what changed); computed when not given.
    tally: Counts | None = field(default=None, compare=False, repr=False)

    # A listing never changes once made (a changed folder gives a new one): derived views are kept.
    @functools.cached_property
    def new(self) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if e.new)

    @functools.cached_property
    def old(self) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if not e.new)

    @functools.cached_property
    def counts(self) -> Counts:
        if self.tally is not None:
            return self.tally
        return Counts.of(self.entries)


@dataclass(frozen=True, kw_only=True)
class Counts:
    new: int  # unseen
    heard: int  # seen, not flagged
    saved: int  # flagged
    total: int

    @staticmethod
    def bucket(entry: Entry) -> str:
        return "new" if entry.new else "saved" if entry.saved else "heard"

    @classmethod
    def of(cls, entries: Iterable[Entry]) -> Counts:
        return cls(new=0, heard=0, saved=0, total=0).changed(added=entries)

    def changed(self, *, added: Iterable[Entry] = (), removed: Iterable[Entry] = ()) -> Counts:
        """These counts after ``removed`` left and ``added`` arrived (a flag change is both)."""
        tally = {"new": self.new, "heard": self.heard, "saved": self.saved}
        for entry in removed:
            tally[self.bucket(entry)] -= 1
        for entry in added:
            tally[self.bucket(entry)] += 1
        return Counts(**tally, total=sum(tally.values()))


# -- voicemails from fetched header fields --------------------------------------------------------------


def _header_fields(block: bytes) -> dict[str, str]:
    """RFC 5322 §2.2 header fields (unfolded, first occurrence wins), names lower-cased."""
    fields: dict[str, str] = {}
    name: str | None = None
    for raw in block.decode("utf-8", errors="replace").split("\r\n"):
        if not raw:
            continue
        if raw[0] in " \t":
            if name is not None:
                fields[name] += " " + raw.strip()
            continue
        key, sep, value = raw.partition(":")
        if not sep or not key or " " in key:
            raise ValueError("malformed header line")
        name = key.strip().lower()
        if name in fields:
            name = None  # a repeated field: keep the first
            continue
        fields[name] = value.strip()
    return fields


def _text(value: str | None) -> str | None:
    """A header value with RFC 2047 encoded-words decoded; None for empty."""
    if not value:
        return None
    if "=?" in value:
        value = str(make_header(decode_header(value)))
    return " ".join(value.split()) or None


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else None


def _entry(record: Fetched) -> Entry | None:
    """The voicemail a fetched message describes, or None for other mail; ValueError for broken fields."""
    if record.literal is None:
        return None
    headers = _header_fields(record.literal)
    kind = (headers.get("x-vm2mail-kind") or "").strip().lower()
    if kind:
        if kind not in KINDS:
            raise ValueError(f"unknown X-Vm2mail-Kind {kind!r}")
        caller, duration = headers.get("x-vm2mail-caller"), headers.get("x-vm2mail-duration")
        caller_name = headers.get("x-vm2mail-caller-name")
    elif any(name.startswith("x-asterisk-vm-") for name in headers):
        # Asterisk IMAP storage (app_voicemail with IMAP_STORAGE) writes these on the stored message.
        kind = "asterisk"
        caller, duration = headers.get("x-asterisk-vm-caller-id-num"), headers.get("x-asterisk-vm-duration")
        caller_name = headers.get("x-asterisk-vm-caller-id-name")
    else:
        return None
    seconds = int(duration) if duration else None  # ValueError: broken header
    if seconds is not None and seconds < 0:
        raise ValueError("negative duration")
    caller = (caller or "").strip()
    date = _date(headers.get("date")) or _date(headers.get("x-asterisk-vm-orig-date")) or record.internaldate
    if date is None:
        raise ValueError("no usable date")
    content_type = (headers.get("content-type") or "").lower()
    return Entry(
        uid=record.uid,
        flags=record.flags if record.flags is not None else NO_FLAGS,
        message_id=headers.get("message-id") or None,
        kind=kind,
        caller=None if caller.lower() in _NO_CALLER else caller,
        caller_name=_text(caller_name),
        called=_text(headers.get("x-vm2mail-called")),
        mailbox=_text(headers.get("x-vm2mail-mailbox")),
        call_id=_text(headers.get("x-vm2mail-call-id")),
        date=date,
        duration=seconds,
        encrypted=content_type.startswith("multipart/encrypted"),
        size=record.size,
    )


def entries_from(records: Iterable[Fetched]) -> list[Entry]:
    out: list[Entry] = []
    for record in records:
        try:
            entry = _entry(record)
        except (ValueError, LookupError, TypeError) as exc:
            # A broken message must never break the menu: skip it (no header content in the log).
            log.debug("skipping UID %d with unusable headers: %s", record.uid, type(exc).__name__)
            continue
        if entry is not None:
            out.append(entry)
    return out


def parse_fetch(lines: list[bytes]) -> list[Entry]:
    """Entries from the untagged lines of ``UID FETCH n:m (UID FLAGS INTERNALDATE RFC822.SIZE
    BODY.PEEK[HEADER.FIELDS (<LIST_HEADERS>)])``; messages that are not voicemails are skipped."""
    return sort_entries(entries_from(fetch_records(lines).values()))


_ORDER = operator.attrgetter("date", "uid")


def entry_order(entry: Entry) -> tuple[datetime, int]:
    """Listings are in (date, UID) order: oldest first, as the menu plays them."""
    return (entry.date, entry.uid)


def sort_entries(entries: Iterable[Entry]) -> list[Entry]:
    # The same key as entry_order, built in C: a first sync sorts 10,000 entries in one go.
    return sorted(entries, key=_ORDER)


def counts(listing: Listing) -> Counts:
    return listing.counts


def uid_set(uids: Iterable[int]) -> str:
    """An RFC 3501 §9 sequence-set of UIDs, with runs collapsed: ``1:3,7``."""
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("empty UID set")
    parts: list[str] = []
    start = prev = ordered[0]
    for uid in [*ordered[1:], 0]:
        if uid == prev + 1:
            prev = uid
            continue
        parts.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = uid
    return ",".join(parts)
