"""Read Asterisk's voicemail spool and deliver each message as a vm2mail voicemail, exactly once.

Layout (app_voicemail, file storage): ``<context dir>/<mailbox>/<folder>/msgNNNN.txt`` with an INI
``[message]`` section (``callerid``, ``origtime`` in epoch seconds, ``duration``, ``msg_id``, ...) beside
``msgNNNN.wav`` (8 kHz PCM), ``msgNNNN.WAV`` (GSM in WAV, ``wav49``) or ``msgNNNN.gsm``. Folders:
``INBOX`` and ``Urgent`` hold unheard messages, ``Old``, ``Work``, ``Family``, ``Friends``, ``Cust1-5``
heard ones; ``tmp`` and ``Deleted`` are not messages a user kept.

Each message becomes a spool job whose id and Message-ID derive from mailbox, folder, file and
``origtime``, so an interrupted import run again skips what it delivered (spool done/ and the IMAP
Message-ID search) and finishes the rest.
"""

from __future__ import annotations

import asyncio
import configparser
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vm2mail import phone
from vm2mail.config.model import Config, Mailbox
from vm2mail.errors import Vm2mailError
from vm2mail.jobs.jobs import VOICEMAIL, CallInfo, Job
from vm2mail.pipeline.batch import DISCARDED, Batch, job_state, run_all

UNHEARD_FOLDERS = ("INBOX", "Urgent")
SKIPPED_FOLDERS = ("tmp", "temp", "Deleted")
AUDIO_SUFFIXES = (".wav", ".WAV", ".gsm")  # preference order when several formats are stored
_MSG = re.compile(r"^msg(\d{4})\.txt$")
_CALLERID = re.compile(r'^\s*"?(?P<name>[^"<]*?)"?\s*<(?P<number>[^>]*)>\s*$')
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

# Outcomes, one per message.
IMPORTED = "imported"
ALREADY = "already imported"
SKIPPED = "discarded earlier"
FAILED = "failed"
WAITING = "waiting for a retry"


@dataclass(frozen=True, kw_only=True)
class AsteriskMessage:
    source: str  # the Asterisk mailbox directory name, e.g. "201"
    folder: str  # INBOX, Old, Work, ...
    name: str  # "msg0003"
    audio: Path
    origtime: int  # epoch seconds the message was left
    caller: str | None
    caller_name: str | None
    duration: int | None
    msg_id: str | None

    @property
    def heard(self) -> bool:
        return self.folder not in UNHEARD_FOLDERS

    @property
    def label(self) -> str:
        return f"{self.source}/{self.folder}/{self.name}"

    @property
    def key(self) -> str:
        """Deterministic identity: mailbox, folder, file and original time."""
        return _UNSAFE.sub("_", f"{self.source}-{self.folder}-{self.name}-{self.origtime}")


def parse_callerid(raw: str) -> tuple[str | None, str | None]:
    """``"Anna" <5551234>`` → (number, name); ``5551234`` → (number, None); withheld → (None, None)."""
    raw = raw.strip()
    match = _CALLERID.match(raw)
    name, number = (match.group("name").strip(), match.group("number").strip()) if match else ("", raw)
    number = "" if phone.withheld(number) else number
    name = "" if phone.withheld(name) or name == number else name
    return number or None, name or None


def _int(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() else None


def read_message(source: str, folder: str, txt: Path) -> AsteriskMessage:
    """One message from its ``msgNNNN.txt`` and the audio beside it; Vm2mailError when unusable."""
    parser = configparser.ConfigParser(interpolation=None, strict=False, comment_prefixes=(";", "#"))
    try:
        parser.read_string(txt.read_text(encoding="utf-8", errors="replace"), source=str(txt))
    except (OSError, configparser.Error) as exc:
        raise Vm2mailError(f"{txt}: unreadable: {exc}") from exc
    if not parser.has_section("message"):
        raise Vm2mailError(f"{txt}: no [message] section")
    info = parser["message"]
    origtime = _int(info.get("origtime"))
    if origtime is None:
        raise Vm2mailError(f"{txt}: no origtime")
    stem = txt.with_suffix("")
    audio = next((p for s in AUDIO_SUFFIXES if (p := stem.with_suffix(s)).is_file()), None)
    if audio is None:
        raise Vm2mailError(f"{txt}: no audio file ({', '.join(stem.name + s for s in AUDIO_SUFFIXES)})")
    caller, caller_name = parse_callerid(info.get("callerid", ""))
    return AsteriskMessage(
        source=source,
        folder=folder,
        name=stem.name,
        audio=audio,
        origtime=origtime,
        caller=caller,
        caller_name=caller_name,
        duration=_int(info.get("duration")),
        msg_id=(info.get("msg_id") or "").strip() or None,
    )


def scan(root: Path, mapping: dict[str, str]) -> tuple[list[AsteriskMessage], list[str]]:
    """The messages of every mapped mailbox under ``root`` (oldest first), and notes on what was skipped."""
    if not root.is_dir():
        raise Vm2mailError(f"{root} is not a directory")
    messages: list[AsteriskMessage] = []
    notes: list[str] = []
    for source in sorted(mapping):
        box_dir = root / source
        if not box_dir.is_dir():
            notes.append(f"{box_dir}: no such Asterisk mailbox directory")
            continue
        for folder_dir in sorted(p for p in box_dir.iterdir() if p.is_dir()):
            if folder_dir.name in SKIPPED_FOLDERS:
                continue
            for txt in sorted(folder_dir.iterdir()):
                if not _MSG.match(txt.name):
                    continue
                try:
                    messages.append(read_message(source, folder_dir.name, txt))
                except Vm2mailError as exc:
                    notes.append(f"skipped {exc}")
    unmapped = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in mapping)
    if unmapped:
        notes.append(f"not imported (no --map): {', '.join(unmapped)}")
    return sorted(messages, key=lambda m: (m.origtime, m.label)), notes


def to_job(config: Config, mailbox: Mailbox, message: AsteriskMessage) -> Job:
    key = message.key
    started = datetime.fromtimestamp(message.origtime, UTC)
    # Asterisk stores the caller ID as the trunk delivered it ("030…", "0049…"): read it as the
    # SMTP ingress does, in the mailbox's country; what is neither a number nor an extension stays
    # visible in the name.
    reading = phone.read(message.caller, mailbox.country)
    name = message.caller_name
    if message.caller and reading.number is None and reading.extension is None:
        name = f"{name} ({message.caller})" if name else message.caller
    return Job(
        id=f"asterisk-{mailbox.id}-{key}"[:128],
        kind=VOICEMAIL,
        source="asterisk",
        mailbox=mailbox.id,
        message_id=f"<asterisk-{key}@{config.server.mail_domain}>",
        call=CallInfo(
            call_sid=f"asterisk-{message.msg_id or key}",
            called=mailbox.numbers[0] if mailbox.numbers else mailbox.id,
            caller=reading.number,
            caller_name=name,
            extension=reading.extension,
        ),
        started_at=started.isoformat(),
        recording_duration=message.duration,
        seen=message.heard,
        history=[f"imported from Asterisk {message.label} ({message.audio.name})"],
    )


Progress = Callable[[AsteriskMessage, str], None]


async def import_messages(
    batch: Batch, messages: list[AsteriskMessage], mapping: dict[str, str], progress: Progress
) -> dict[str, int]:
    """Spool and deliver ``messages``; ``progress(message, outcome)`` after each. Outcome counts."""
    config = batch.config
    totals: dict[str, int] = {}
    by_key = {m.key: m for m in messages}

    async def one(key: str) -> None:
        message = by_key[key]
        mailbox = config.mailboxes[mapping[message.source]]
        job = to_job(config, mailbox, message)
        state = job_state(batch.spool, job.id)
        if state is None:
            blob = await asyncio.to_thread(message.audio.read_bytes)
            await asyncio.to_thread(batch.submit, job, blob, message.audio.suffix.lower())
            state = "new"
        if state == "done":
            outcome = ALREADY
        elif state == DISCARDED:
            outcome = SKIPPED  # the admin discarded it (vm2mail spool discard): never brought back
        elif state == "failed":
            outcome = f"{FAILED}: {batch.last_event(job.id)} (retry with: vm2mail spool retry {job.id})"
        else:
            end = await batch.deliver(job.id)
            outcome = (
                IMPORTED
                if end == "done"
                else f"{FAILED if end == 'failed' else WAITING}: " + (batch.last_event(job.id))
            )
        totals[outcome.split(":")[0]] = totals.get(outcome.split(":")[0], 0) + 1
        progress(message, outcome)

    await run_all(list(by_key), one, config.server.workers)
    return totals
