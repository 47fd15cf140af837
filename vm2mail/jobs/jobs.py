"""The spool's job record: everything a worker needs to turn one acknowledged recording into mail."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vm2mail import phone

VOICEMAIL = "voicemail"
MISSED_CALL = "missed-call"

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def caller_number(raw: str | None) -> str | None:
    """The caller's E.164 number, or None when it is withheld, empty or not a phone number."""
    value = (raw or "").strip()
    if phone.withheld(value) or not phone.is_e164(value):
        return None
    return value


def twilio_job_id(recording_sid: str) -> str:
    """The spool id of a Twilio recording's job: the same for the callback, reconcile and lookups."""
    return f"twilio-{recording_sid}"


def sid_message_id(sid: str, mail_domain: str) -> str:
    """``<RecordingSid@domain>`` (or CallSid): the Message-ID that makes IMAP delivery idempotent."""
    return f"<{sid}@{mail_domain}>"


@dataclass(kw_only=True)
class CallInfo:
    call_sid: str
    called: str  # the E.164 number the caller dialled
    caller: str | None = None  # E.164, or None when the caller ID is withheld
    caller_name: str | None = None  # CNAM / display name, may be UTF-8
    extension: str | None = None  # a PBX-internal caller's extension (no public number)


@dataclass(kw_only=True)
class Job:
    """One voicemail (or missed call) for one mailbox; the unit the spool makes durable.

    ``id`` is deterministic (``twilio-<RecordingSid>``), so a repeated callback finds the existing job.
    ``message_id`` (``<RecordingSid@mail_domain>``) is the IMAP idempotency key: before each APPEND the
    worker searches the folder for it, so a crash between APPEND and completion never duplicates.
    """

    id: str
    kind: str  # VOICEMAIL | MISSED_CALL
    source: str  # "twilio" | "smtp"
    mailbox: str
    message_id: str
    call: CallInfo
    started_at: str  # ISO 8601 with offset: when the recording (or call) started
    recording_sid: str | None = None
    recording_url: str | None = None  # Twilio RecordingUrl (no extension); fetched only from api host
    recording_duration: int | None = None  # seconds, as Twilio reported it
    audio_blob: str | None = None  # file name under spool/blobs/ holding audio that came with the job
    attempts: int = 0
    not_before: float = 0.0  # epoch seconds: do not retry before
    delivered: list[str] = field(default_factory=list)  # mailbox ids whose folder has the message
    recording_deleted: bool = False
    queued_at: float | None = None  # epoch seconds it entered the spool; retries give up a week later
    seen: bool = False  # deliver already \Seen (heard), e.g. an Asterisk message from its Old folder
    history: list[str] = field(default_factory=list)  # "timestamp: what happened" lines for admins

    def __post_init__(self) -> None:
        if not _SAFE_ID.match(self.id):
            raise ValueError(f"unsafe job id {self.id!r}")

    @property
    def started(self) -> datetime:
        return datetime.fromisoformat(self.started_at)

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Job:
        raw: dict[str, Any] = json.loads(data)
        raw["call"] = CallInfo(**raw["call"])
        return cls(**raw)
