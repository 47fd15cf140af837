"""Every IMAP response the gateway reads, parsed in one place into typed values, in linear time.

aioimaplib hands a response over as a list of lines: the untagged data lines, each literal
(RFC 3501 §4.3) as a separate ``bytearray`` right after the line announcing it, and the tagged status
line last. Nothing else in the package looks at those lines: the connection type
(``mailstore.connection``) runs commands and calls the parsers here, and everything above gets
``Status``, ``Fetched``, UID lists, ``ListItem`` and ``Push`` values. Each parser makes one pass over
the lines, so a 10,000-message FETCH costs the same per message as a 10-message one.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

from vm2mail.mailstore.folders import decode_mailbox

Line = bytes | bytearray
Lines = Sequence[Line]

_FETCH_START = re.compile(rb"^\d+ FETCH \(", re.IGNORECASE)
_LITERAL = re.compile(rb"\{(\d+)\}$")
# The whole line of a flags-only FETCH (a folder's flags re-read without CONDSTORE: 10,000 of them per
# menu step), read without the general attribute scan.
_UID_FLAGS = re.compile(rb"^\d+ FETCH \(UID (\d+) FLAGS \(([^)]*)\)\)$", re.IGNORECASE)
_ATTRS = re.compile(
    rb"UID (?P<uid>\d+)|FLAGS \((?P<flags>[^)]*)\)|INTERNALDATE \"(?P<date>[^\"]+)\""
    rb"|RFC822\.SIZE (?P<size>\d+)|MODSEQ \((?P<modseq>\d+)\)",
    re.IGNORECASE,
)
# RFC 3501 §7.4.2 BODYSTRUCTURE: a body type "audio" (any subtype) or an attachment named like audio.
_AUDIO = re.compile(
    rb'\(\s*"audio"\s+"|"(?:file)?name\*?"\s+"[^"]*\.(?:wav|mp3|gsm|ogg|opus|m4a|amr|flac|au)"', re.IGNORECASE
)
_STATUS = re.compile(rb"(MESSAGES|UIDNEXT|UIDVALIDITY|HIGHESTMODSEQ|UNSEEN) (\d+)", re.IGNORECASE)
_VANISHED = re.compile(rb"^VANISHED (?:\(EARLIER\) )?([0-9:,]+)\s*$", re.IGNORECASE)
_ESEARCH_ALL = re.compile(rb"\bALL ([0-9:,]+)", re.IGNORECASE)
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.IGNORECASE)
_COPYUID = re.compile(rb"\[COPYUID \d+ ([0-9:,]+) ([0-9:,]+)\]", re.IGNORECASE)
_MODIFIED = re.compile(rb"\[MODIFIED ", re.IGNORECASE)
_METADATA_QUOTED = re.compile(rb'^\s*"((?:\\.|[^"\\])*)"')
_LIST = re.compile(r'\(([^)]*)\)\s+(NIL|"(?:\\.|[^"\\])*")\s+(.*)$', re.IGNORECASE)
# Pushes during IDLE (RFC 2177) and after NOOP: what they may mean for a synchronised folder.
_EXPUNGE = re.compile(rb"^(\d+ EXPUNGE|VANISHED)\b", re.IGNORECASE)
# Untagged NO/BAD/BYE: Dovecot says "* NO Internal error" forever once the selected folder was deleted by
# another session (RFC 3501 §7.1.2/§7.1.5): only a new session (re-SELECT) gets out of that state.
_TROUBLE = re.compile(rb"^(NO|BAD|BYE)\b", re.IGNORECASE)
# Pushes that say nothing about the folder: RFC 2177 keep-alives such as Dovecot's "OK Still here".
_KEEPALIVE = re.compile(rb"^OK\b", re.IGNORECASE)

PushKind = Literal["change", "expunge", "keepalive", "trouble"]


def untagged(response: Any) -> list[bytes]:
    """The untagged lines (and literals) of an aioimaplib Response, without the tagged status line."""
    return [bytes(line) for line in response.lines[:-1]]


def status_text(response: Any) -> str:
    """The tagged status text of an aioimaplib Response (its last line), for error messages."""
    lines: list[Line] = list(response.lines)
    return bytes(lines[-1]).decode("utf-8", errors="replace") if lines else ""


# -- STATUS (RFC 3501 §7.2.4, RFC 7162 §3.1.2.1) ---------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Status:
    """A folder's state as STATUS reports it; ``highestmodseq`` is None without CONDSTORE."""

    messages: int
    uidvalidity: int
    uidnext: int = 0
    highestmodseq: int | None = None
    unseen: int | None = None


def parse_status(lines: Iterable[Line]) -> Status | None:
    """The folder state in untagged ``STATUS name (...)`` lines; None when MESSAGES/UIDVALIDITY lack."""
    values: dict[str, int] = {}
    for line in lines:
        for match in _STATUS.finditer(bytes(line)):
            values[match.group(1).decode().upper()] = int(match.group(2))
    if "UIDVALIDITY" not in values or "MESSAGES" not in values:
        return None
    return Status(
        messages=values["MESSAGES"],
        uidvalidity=values["UIDVALIDITY"],
        uidnext=values.get("UIDNEXT", 0),
        highestmodseq=values.get("HIGHESTMODSEQ"),
        unseen=values.get("UNSEEN"),
    )


# -- FETCH (RFC 3501 §7.4.2, RFC 7162 §3.1.4) -----------------------------------------------------------


@dataclass(slots=True)
class Fetched:
    """The data items of one message merged over every untagged FETCH line that named its UID."""

    uid: int
    flags: frozenset[str] | None = None
    raw_internaldate: bytes | None = None  # parsed on demand: most readers never need it
    size: int = 0
    modseq: int | None = None
    literal: bytes | None = None  # the (last) literal: header fields or the whole message
    audio: bool = False  # its BODYSTRUCTURE (when fetched) has an audio part

    @property
    def internaldate(self) -> datetime | None:
        """RFC 3501 date-time, e.g. ``23-Nov-2026 09:00:00 +0000``; None when absent or malformed."""
        if self.raw_internaldate is None:
            return None
        with contextlib.suppress(ValueError):
            return datetime.strptime(self.raw_internaldate.decode().strip(), "%d-%b-%Y %H:%M:%S %z")
        return None


# The one empty flag set: CPython has no empty-frozenset singleton, and a folder of 10,000 unread
# voicemails would otherwise hold 10,000 of them (each one more object for every full GC pass).
NO_FLAGS: frozenset[str] = frozenset()


@functools.lru_cache(maxsize=4096)
def flag_set(raw: bytes) -> frozenset[str]:
    """The flags of a ``FLAGS (...)`` item, without ``\\Recent``; one shared object per distinct list
    (a folder of 10,000 messages has a handful), so entries hold no frozenset of their own."""
    flags = frozenset(raw.decode("ascii", "replace").split()) - {"\\Recent"}
    return flags or NO_FLAGS


def parse_fetch(lines: Iterable[Line]) -> dict[int, Fetched]:
    """Group FETCH response lines by message: ``N FETCH (... {size}``, the literal, ``)``.

    Attributes may continue on the line after a literal. Unsolicited FETCH lines without UID (flag
    changes by other sessions) are ignored.
    """
    records: dict[int, Fetched] = {}
    parts: list[bytes] = []
    literal: bytes | None = None
    expect_literal = False

    def finish() -> None:
        text = b" ".join(parts)
        fields: dict[str, bytes] = {}
        for match in _ATTRS.finditer(text):
            key = match.lastgroup  # each alternative has one named group: the one that matched
            if key is not None and key not in fields:
                fields[key] = match.group(key)
        if "uid" not in fields:
            return
        uid = int(fields["uid"])
        record = records.setdefault(uid, Fetched(uid))
        if "flags" in fields:
            record.flags = flag_set(fields["flags"])
        if "date" in fields:
            record.raw_internaldate = fields["date"]
        if "size" in fields:
            record.size = int(fields["size"])
        if "modseq" in fields:
            record.modseq = int(fields["modseq"])
        if b"BODYSTRUCTURE" in text.upper() and _AUDIO.search(text):
            record.audio = True
        if literal is not None:
            record.literal = literal

    started = False
    for raw in lines:
        line = bytes(raw)
        if expect_literal:
            literal, expect_literal = line, False
            continue
        if simple := _UID_FLAGS.match(line):
            if started:
                finish()
            started = False
            uid = int(simple.group(1))
            record = records.setdefault(uid, Fetched(uid))
            record.flags = flag_set(simple.group(2))
            continue
        if _FETCH_START.match(line):
            if started:
                finish()
            started, parts, literal = True, [line], None
        elif started:
            parts.append(line)
        else:
            continue
        expect_literal = bool(_LITERAL.search(line))
    if started:
        finish()
    return records


# -- SEARCH / ESEARCH (RFC 3501 §7.2.5, RFC 4731 §3.1) ---------------------------------------------------


def expand_set(ranges: str) -> list[int]:
    """The numbers of an RFC 3501 §9 sequence-set without ``*``: ``1:3,7`` -> [1, 2, 3, 7]."""
    out: list[int] = []
    for part in ranges.split(","):
        low, _, high = part.partition(":")
        start, end = int(low), int(high or low)
        out.extend(range(min(start, end), max(start, end) + 1))
    return out


def parse_enabled(lines: Iterable[Line]) -> set[str]:
    """Capability names from untagged ``ENABLED ...`` data (RFC 5161 §3.2), upper-cased."""
    names: set[str] = set()
    for raw in lines:
        words = bytes(raw).decode("ascii", "replace").upper().split()
        if words[:1] == ["ENABLED"]:
            names.update(words[1:])
    return names


def parse_vanished(lines: Iterable[Line]) -> set[int]:
    """UIDs from untagged ``VANISHED [(EARLIER)] set`` data (RFC 7162 §3.2.10): expunged messages."""
    gone: set[int] = set()
    for raw in lines:
        match = _VANISHED.match(bytes(raw))
        if match is not None:
            gone.update(expand_set(match.group(1).decode()))
    return gone


def parse_search(lines: Iterable[Line]) -> list[int]:
    """UIDs (or sequence numbers) from untagged ``SEARCH n n ...`` or ``ESEARCH ... ALL set`` data."""
    found: list[int] = []
    for raw in lines:
        line = bytes(raw)
        head = line[:8].upper()
        if head.startswith(b"ESEARCH"):
            match = _ESEARCH_ALL.search(line)
            if match is not None:
                found.extend(expand_set(match.group(1).decode()))
            continue
        text = line[6:] if head.startswith(b"SEARCH") else line
        found.extend(int(tok) for tok in text.split() if tok.isdigit())
    return found


# -- response codes (RFC 4315 UIDPLUS, RFC 7162 §3.1.3) --------------------------------------------------


def append_uid(lines: Iterable[Line]) -> int | None:
    """The new message's UID from ``[APPENDUID uidvalidity uid]``, if the server sent one."""
    for line in lines:
        match = _APPENDUID.search(bytes(line))
        if match:
            return int(match.group(2))
    return None


def copy_uids(lines: Iterable[Line]) -> dict[int, int]:
    """Source UID -> target UID from ``[COPYUID uidvalidity source-set dest-set]`` (COPY and MOVE)."""
    for line in lines:
        match = _COPYUID.search(bytes(line))
        if match:
            sources, targets = expand_set(match.group(1).decode()), expand_set(match.group(2).decode())
            return dict(zip(sources, targets, strict=False))
    return {}


def modified(lines: Iterable[Line]) -> bool:
    """Whether a conditional STORE answered ``[MODIFIED ...]``: some message changed meanwhile."""
    return any(_MODIFIED.search(bytes(line)) for line in lines)


# -- LIST (RFC 3501 §7.2.2, RFC 6154) ---------------------------------------------------------------------


class ListItem(NamedTuple):
    flags: tuple[str, ...]
    delimiter: str | None
    name: str  # decoded from modified UTF-7


def parse_list_line(line: Line) -> ListItem | None:
    """One untagged LIST line, with or without the leading ``* LIST``; literal names are not handled."""
    text = bytes(line).decode("utf-8", errors="replace").strip()
    text = re.sub(r"^(\*\s+)?LIST\s+", "", text, flags=re.IGNORECASE)
    match = _LIST.match(text)
    if match is None:
        return None
    raw_delim = match.group(2)
    delimiter = None if raw_delim.upper() == "NIL" else _unquote(raw_delim)
    raw_name = match.group(3).strip()
    name = _unquote(raw_name) if raw_name.startswith('"') else raw_name
    return ListItem(tuple(match.group(1).split()), delimiter, decode_mailbox(name))


def parse_list(lines: Iterable[Line]) -> list[ListItem]:
    return [item for line in lines if (item := parse_list_line(line)) is not None]


def _unquote(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value[1:-1])


# -- METADATA (RFC 5464 §4.4) ----------------------------------------------------------------------------


def parse_metadata(lines: Lines, name: str) -> str | None:
    """The value of entry ``name`` from the untagged ``METADATA mailbox (entry value ...)`` lines."""
    wanted = name.lower().encode()
    for index, raw in enumerate(lines):
        line = bytes(raw)
        if not line.upper().startswith(b"METADATA "):
            continue
        position = line.lower().find(wanted)
        if position < 0:
            continue
        rest = line[position + len(wanted) :]
        if _LITERAL.search(rest) is not None and index + 1 < len(lines):
            return bytes(lines[index + 1]).decode("utf-8", errors="replace")
        quoted = _METADATA_QUOTED.match(rest)
        if quoted is not None:
            return re.sub(rb"\\(.)", rb"\1", quoted.group(1)).decode("utf-8", errors="replace")
        return None  # NIL: no such entry
    return None


# -- pushes (RFC 2177 IDLE, RFC 3501 §7.3-7.4, RFC 7162 §3.2.10 VANISHED) -----------------------------


def classify_push(line: Line) -> PushKind:
    """What an untagged line means for a synchronised folder."""
    data = bytes(line)
    if _TROUBLE.match(data):
        return "trouble"
    if _EXPUNGE.match(data):
        return "expunge"
    if _KEEPALIVE.match(data):
        return "keepalive"
    return "change"  # EXISTS, FETCH (flags), RECENT, anything else: resync to be safe
