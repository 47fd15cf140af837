"""Read a PBX's voicemail e-mail (Asterisk, FreePBX, any mail with one audio attachment) into typed fields."""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import ipaddress
import json
import re
import struct
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path

from vm2mail import phone
from vm2mail.config.model import SmtpClientRule
from vm2mail.errors import AudioError
from vm2mail.smtp.pbxdate import body_date, header_date

AUDIO_SUFFIXES = {
    ".wav": ".wav",
    ".gsm": ".gsm",
    ".mp3": ".mp3",
    ".ogg": ".ogg",
    ".opus": ".ogg",
    ".oga": ".ogg",
}
AUDIO_SUFFIXES.update({".m4a": ".m4a", ".mp4": ".m4a", ".aac": ".m4a", ".wave": ".wav"})
_TYPE_SUFFIX = {"x-wav": ".wav", "wav": ".wav", "wave": ".wav", "vnd.wave": ".wav", "gsm": ".gsm"}
_TYPE_SUFFIX.update({"x-gsm": ".gsm", "mpeg": ".mp3", "mp3": ".mp3", "ogg": ".ogg", "opus": ".ogg"})
_TYPE_SUFFIX.update({"mp4": ".m4a", "x-m4a": ".m4a", "m4a": ".m4a", "aac": ".m4a"})

# Asterisk's default e-mail body ("... left a 0:12 long message (number 1) in mailbox 201 from
# "Max" <4930123>, on ...") and FreePBX's ("From: ... / Length: 12 seconds"): used when no header says.
_BUILTIN_CALLER = (
    re.compile(r"\bfrom (?P<caller>.+?), on\b"),
    re.compile(r"^\s*From:\s*(?P<caller>.+?)\s*$", re.M),
)
_BUILTIN_DURATION = (
    re.compile(r"left a (?P<duration>\d+(?::\d{2}){1,2}) long message"),
    re.compile(r"^\s*(?:Length|Duration):\s*(?P<duration>\d+(?::\d{2}){0,2})", re.M | re.I),
)
_CID = re.compile(r'^\s*"?(?P<name>[^"<]*?)"?\s*<(?P<number>[^>]*)>\s*$')
_WAV_TAGS = {0x0001, 0x0002, 0x0003, 0x0006, 0x0007, 0x0011, 0x0031, 0x0055, 0xFFFE}


class NotVoicemail(Exception):
    """The e-mail carries no usable voicemail; the message says why (it goes into the 5xx reply)."""


@dataclass(frozen=True, kw_only=True)
class PbxVoicemail:
    audio: bytes
    suffix: str  # ".wav", ".gsm", ".mp3", ".ogg", ".m4a": ffmpeg needs it for headerless GSM
    caller: str | None  # E.164, or None when withheld or not a public number
    caller_name: str | None
    extension: str | None  # an internal caller's extension (or the extension of ``caller``)
    duration: int | None  # seconds, as the PBX reported it
    started: datetime  # aware
    message_id: str | None


# -- parsing with big attachments lifted out ---------------------------------------------------------------
# The email package handles a 1.3 MB message (a 60 s WAV in base64) in ~15 ms of pure Python, all of it
# holding the GIL the SMTP sessions and the workers share. Almost all of that is the attachment, which
# only needs binascii.a2b_base64 (C). So before parsing, each large base64 part body is replaced by a
# short placeholder; the structure, headers and text parts still go through the email package unchanged.
LIFT_MIN_BYTES = 16 * 1024  # smaller bodies are not worth it
_PLACEHOLDER = "vm2mail-lifted-body-{}"


@dataclass
class Parsed:
    message: EmailMessage
    lifted: dict[str, bytes] = field(default_factory=dict)  # token -> base64 text of the part body

    def payload(self, part: EmailMessage) -> bytes | None:
        """The decoded body of a non-multipart part (lifted ones decoded from their base64 text)."""
        raw = part.get_payload()
        if isinstance(raw, str) and (encoded := self.lifted.get(raw.strip())) is not None:
            try:
                return binascii.a2b_base64(encoded)
            except binascii.Error:
                return None
        data = part.get_payload(decode=True)
        return data if isinstance(data, bytes) else None


def _lift(raw: bytes) -> tuple[bytes, dict[str, bytes]]:
    """Replace each large body of a base64 part (between its blank line and the next boundary)."""
    out: list[bytes] = []
    lifted: dict[str, bytes] = {}
    pos = search = 0
    while (blank := raw.find(b"\r\n\r\n", search)) >= 0:
        body = blank + 4
        end = raw.find(b"\r\n--", body)  # the next boundary delimiter line (RFC 2046 §5.1.1)
        if end < 0:
            break
        search = end
        if end - body < LIFT_MIN_BYTES:
            continue
        head_start = max(raw.rfind(b"\r\n--", 0, blank), 0)
        if b"base64" not in raw[head_start:blank].lower() or head_start == 0:
            continue  # not a base64 MIME part (or the top-level header block itself)
        token = _PLACEHOLDER.format(len(lifted))
        lifted[token] = raw[body:end]
        out += [raw[pos:body], token.encode()]
        pos = end
    out.append(raw[pos:])
    return b"".join(out), lifted


def parse_message(raw: bytes) -> Parsed:
    """The message as ``email.message.EmailMessage`` (policy ``default``) plus its lifted bodies."""
    light, lifted = _lift(raw)
    message = BytesParser(policy=default_policy).parsebytes(light)
    assert isinstance(message, EmailMessage)
    return Parsed(message=message, lifted=lifted)


def rule_for(rules: tuple[SmtpClientRule, ...], peer: str | None, user: str | None) -> SmtpClientRule | None:
    """The first client rule naming this AUTH user or a network holding the client's address."""
    for rule in rules:
        if rule.user and user and rule.user == user:
            return rule
        if rule.network and peer:
            with contextlib.suppress(ValueError):
                if ipaddress.ip_address(peer) in ipaddress.ip_network(rule.network, strict=False):
                    return rule
    return None


def split_caller_id(value: str) -> tuple[str | None, str | None]:
    """``"Max" <+4930123>`` / ``Max <4930123>`` / ``4930123`` → (number text, name)."""
    value = " ".join(value.split())
    if phone.withheld(value):
        return None, None
    if match := _CID.match(value):
        name = match.group("name").strip() or None
        number = match.group("number").strip()
        return (None if phone.withheld(number) else number), (None if phone.withheld(name) else name)
    if re.fullmatch(r"[+0-9()\s.\-/]+", value):
        return value, None
    return None, value


def seconds(value: str) -> int | None:
    """``12``, ``0:12`` or ``1:02:03`` → seconds."""
    total = 0
    for piece in value.strip().split(":"):
        if not piece.isdigit():
            return None
        total = total * 60 + int(piece)
    return total


def _search(pattern: str | re.Pattern[str], texts: list[str], field: str) -> str | None:
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    for text in texts:
        if match := regex.search(text):
            named = match.groupdict().get(field)
            value = named if named is not None else (match.group(1) if regex.groups else match.group(0))
            if value and value.strip():
                return value.strip()
    return None


def header(message: EmailMessage, name: str) -> str:
    """A header's text: RFC 2047 decoded, or raw 8-bit bytes read as UTF-8, else ISO-8859-1 (as PBXs send)."""
    for key, value in message.raw_items():
        if key.lower() == name.lower():
            text = str(value)
            if any("\udc80" <= ch <= "\udcff" for ch in text):  # undecodable bytes kept by the parser
                data = text.encode("ascii", "surrogateescape")
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    text = data.decode("latin-1")
            else:
                text = str(message.get(name, ""))
            return " ".join(text.split())
    return ""


def _text_body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        return ""
    try:
        return str(part.get_content())  # decodes the declared charset (Asterisk: ISO-8859-1)
    except (LookupError, ValueError):
        payload = part.get_payload(decode=True)
        return payload.decode("latin-1") if isinstance(payload, bytes) else ""


def _audio_part(parsed: Parsed) -> tuple[bytes, str]:
    found: list[tuple[EmailMessage, str]] = []
    for part in parsed.message.walk():
        if part.is_multipart():
            continue
        name = (part.get_filename() or "").strip()
        suffix = AUDIO_SUFFIXES.get(Path(name).suffix.lower()) if name else None
        if suffix is None and part.get_content_maintype() == "audio":
            suffix = _TYPE_SUFFIX.get(part.get_content_subtype().lower(), ".wav")
        if suffix is not None:
            found.append((part, suffix))
    if not found:
        raise NotVoicemail("no audio attachment (WAV, GSM, MP3, Ogg/Opus or M4A) in the message")
    if len(found) > 1:
        raise NotVoicemail(f"{len(found)} audio attachments; a voicemail e-mail carries exactly one")
    part, suffix = found[0]
    data = parsed.payload(part)
    if not data:
        raise NotVoicemail("the audio attachment is empty")
    return data, suffix


def _started(message: EmailMessage, body: str, now: datetime, tz: tzinfo) -> datetime:
    orig = str(message.get("X-Asterisk-VM-Orig-time", "")).strip()
    if orig.isdigit():
        return datetime.fromtimestamp(int(orig), UTC)
    return header_date(header(message, "Date")) or body_date(body, tz) or now


def _stripped(name: str) -> str:
    """What Asterisk leaves of a name in X-Asterisk-CallerIDName: non-ASCII bytes dropped."""
    return " ".join("".join(ch for ch in name if ch.isascii()).split())


def best_name(header_name: str | None, body_name: str | None) -> str | None:
    """The header's name, unless the body has the same name with the letters the header lost."""
    if not header_name or not body_name:
        return header_name or body_name
    lossy = header_name.replace("?", "")
    if body_name != header_name and _stripped(body_name).replace("?", "") in (lossy, _stripped(lossy)):
        return body_name
    return header_name


def parse(
    parsed: Parsed,
    rule: SmtpClientRule | None,
    *,
    now: datetime,
    country: str | None = None,
    tz: tzinfo = UTC,
) -> PbxVoicemail:
    """Caller, duration, time and the one audio attachment; NotVoicemail when there is no audio.

    ``country`` reads national numbers ("030…"), ``tz`` a date in the body that carries no zone.
    """
    message = parsed.message
    audio, suffix = _audio_part(parsed)
    subject = header(message, "Subject")
    texts = [subject, _text_body(message)]

    number_text: str | None = None
    name: str | None = None
    for name_ in ("X-Asterisk-CallerID", "X-Asterisk-VM-Caller-ID-Num"):
        if value := header(message, name_):
            number_text, name = split_caller_id(value)
            break
    for name_ in ("X-Asterisk-CallerIDName", "X-Asterisk-VM-Caller-ID-Name"):
        if (value := header(message, name_)) and not phone.withheld(value):
            name = value
            break
    duration_text = str(message.get("X-Asterisk-VM-Duration", "")).strip() or None

    if rule is not None:  # the admin's patterns for this PBX, where headers said nothing
        if number_text is None and rule.caller_pattern:
            found = _search(rule.caller_pattern, texts, "caller")
            if found:
                number_text, found_name = split_caller_id(found)
                name = name or found_name
        if name is None and rule.caller_name_pattern:
            name = _search(rule.caller_name_pattern, texts, "caller_name")
        if duration_text is None and rule.duration_pattern:
            duration_text = _search(rule.duration_pattern, texts, "duration")
    for regex in _BUILTIN_CALLER:
        if found := _search(regex, texts[1:], "caller"):
            body_number, body_name = split_caller_id(found)
            # The body is written in the mail's charset (UTF-8, ISO-8859-1) and keeps the full name
            # Asterisk strips from its header ("Jörg Müller" for "Jrg Mller").
            number_text, name = number_text or body_number, best_name(name, body_name)
            break
    if duration_text is None:
        for regex in _BUILTIN_DURATION:
            if duration_text := _search(regex, texts[1:], "duration"):
                break

    reading = phone.read(number_text, country)
    if number_text and reading.number is None and reading.extension is None:
        # Neither a public number nor an extension: the user should still see what the PBX said.
        name = f"{name} ({number_text})" if name else number_text
    message_id = str(message.get("Message-ID", "")).strip() or None
    return PbxVoicemail(
        audio=audio,
        suffix=suffix,
        caller=reading.number,
        caller_name=name,
        extension=reading.extension,
        duration=seconds(duration_text) if duration_text else None,
        started=_started(message, texts[1], now, tz),
        message_id=message_id,
    )


# -- audio check before the 250 -----------------------------------------------------------------------
def wav_seconds(data: bytes) -> float | None:
    """Length of a RIFF/WAVE file from its header; None when it is not one we can read here."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, byte_rate, tag = 12, 0, None
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk == b"fmt " and size >= 16 and body + 16 <= len(data):
            tag, channels, rate, byte_rate = struct.unpack_from("<HHII", data, body)
            if not (1 <= channels <= 8 and 4000 <= rate <= 192000 and byte_rate > 0):
                raise AudioError("the WAV header is invalid (channels, sample rate)", temporary=False)
        elif chunk == b"data":
            if tag not in _WAV_TAGS:
                return None  # an unusual codec: let ffprobe decide
            available = min(size, len(data) - body)
            if available <= 0:
                raise AudioError("the WAV file holds no audio", temporary=False)
            return float(available) / float(byte_rate)
        pos = body + size + (size & 1)
    return None


async def check_audio(data: bytes, suffix: str, scratch: Path) -> float:
    """The recording's length in seconds; AudioError (permanent) when it cannot be decoded.

    WAV headers (PCM, µ-law, A-law, GSM 6.10 …) are read here without a subprocess; other formats are
    probed with ffprobe, which runs as a subprocess so the event loop never waits for it.
    """
    if suffix == ".wav" and (length := wav_seconds(data)) is not None:
        return length
    path = scratch / f"probe-{uuid.uuid4().hex}{suffix}"
    await asyncio.to_thread(path.write_bytes, data)
    try:
        proc = await asyncio.create_subprocess_exec(
            "ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
            "stream=codec_name,duration:format=duration", "-of", "json", str(path),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
    except OSError as exc:
        raise AudioError(f"cannot run ffprobe: {exc}", temporary=True) from exc
    finally:
        path.unlink(missing_ok=True)
    try:
        info = json.loads(out or b"{}")
    except ValueError:
        info = {}
    streams = info.get("streams") or []
    if proc.returncode != 0 or not streams:
        reason = err.decode(errors="replace").strip().splitlines()[-1:] or ["no audio stream"]
        # ffprobe names the file first ("/tmp/probe-….mp3: Invalid data …"): the sender knows no such file.
        detail = reason[0].replace(f"{path}: ", "").replace(str(path), "the attachment").strip(" :")
        raise AudioError(f"the audio attachment cannot be decoded: {detail}")
    for value in (streams[0].get("duration"), (info.get("format") or {}).get("duration")):
        with contextlib.suppress(TypeError, ValueError):
            return float(str(value))
    return 0.0
