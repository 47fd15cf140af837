"""Write ID3v2.4 tags into a voicemail MP3 so players and ffprobe show who called, when and for whom."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import mutagen.id3
from mutagen import MutagenError

from vm2mail.errors import AudioError

UNKNOWN_CALLER = "Unknown caller"

# mutagen's frame classes have untyped constructors; going through Any keeps mypy --strict quiet in one place.
_id3: Any = mutagen.id3


@dataclass(frozen=True, kw_only=True)
class VoicemailTags:
    title: str
    caller: str | None  # E.164, None when withheld
    caller_name: str | None
    called: str  # the E.164 number dialled
    date: datetime  # aware; in the listener's zone: TDRC holds its wall clock, TXXX "recorded" the offset
    duration: float  # seconds
    mailbox: str  # the called mailbox's id
    call_id: str  # Twilio CallSid or the PBX's call id
    comment: str | None = None  # in the listener's language; an English one is made when None
    artist: str | None = None  # who called, as the listener reads it; caller_name/caller when None
    extension: str | None = None  # a PBX-internal caller's extension


def artist(tags: VoicemailTags) -> str:
    """The name a player shows as the artist: caller name, else number, else "Unknown caller"."""
    return tags.artist or tags.caller_name or tags.caller or UNKNOWN_CALLER


def write_tags(mp3: Path, tags: VoicemailTags) -> None:
    """Replace any tags in ``mp3`` with an ID3v2.4 tag; blocking file I/O, run it in a thread.

    Text is UTF-8 (ID3v2.4 §4.2 allows encoding byte $03), so names like "Jürgen Müller 😀" survive.
    TXXX descriptions become the tag keys ffprobe prints (``TAG:caller=...``).
    """
    id3 = _id3.ID3()
    utf8 = _id3.Encoding.UTF8
    id3.add(_id3.TIT2(encoding=utf8, text=[tags.title]))
    id3.add(_id3.TPE1(encoding=utf8, text=[artist(tags)]))
    id3.add(_id3.TALB(encoding=utf8, text=[f"Voicemail {tags.mailbox}"]))
    id3.add(_id3.TCON(encoding=utf8, text=["Voicemail"]))
    # TDRC is an ID3v2.4 timestamp (a subset of ISO 8601 without zone): the wall-clock time of ``date``.
    id3.add(_id3.TDRC(encoding=utf8, text=[_id3.ID3TimeStamp(tags.date.strftime("%Y-%m-%dT%H:%M:%S"))]))
    # TLEN: length in milliseconds, as a numeric string (ID3v2.4 native frames §4.2.3).
    id3.add(_id3.TLEN(encoding=utf8, text=[str(round(tags.duration * 1000))]))
    comment = tags.comment or (
        f"Voicemail from {artist(tags)} for {tags.called}, mailbox {tags.mailbox}, call {tags.call_id}"
    )
    id3.add(_id3.COMM(encoding=utf8, lang="eng", desc="", text=[comment]))
    extra = {
        "caller": tags.caller or "anonymous",
        "caller_name": tags.caller_name,
        "extension": tags.extension,
        "called": tags.called,
        "mailbox": tags.mailbox,
        "call_id": tags.call_id,
        "duration": str(round(tags.duration)),
        "recorded": tags.date.isoformat(),  # with its UTC offset, which TDRC cannot hold
    }
    for desc, value in extra.items():
        if value:
            id3.add(_id3.TXXX(encoding=utf8, desc=desc, text=[value]))
    try:
        # "r+b": the MP3 must exist (mutagen would create a tag-only file from a path).
        # v1=0 removes any ID3v1 tag: it is Latin-1 only and would truncate names to 30 bytes.
        with mp3.open("r+b") as fileobj:
            id3.save(fileobj, v1=0, v2_version=4)
    except (MutagenError, OSError) as exc:
        raise AudioError(f"cannot write tags to {mp3.name}: {exc}", temporary=False) from exc
