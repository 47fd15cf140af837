"""Reply-To tokens on voicemail e-mails, and turning the owner's e-mail reply into exactly one SMS."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path

from vm2mail import phone
from vm2mail.config.model import Config, Mailbox
from vm2mail.errors import TelephonyError
from vm2mail.ingest.spool import fsync_dir

log = logging.getLogger(__name__)

PREFIX = "reply+"
_VERSION = 2  # v2 masks the caller's digits (v1 tokens, with readable digits, are still accepted)
# Domain separation: this key signs reply tokens only, never media URLs or menu state.
_CONTEXT = b"vm2mail smtp reply token v1"
_MAC_BYTES = 10  # 80 bits: a forger gets one guess per SMTP transaction
_HEAD = struct.Struct(">BH7s")  # version, expiry (days since 1970), caller digits (uint56)
_DAY = 86400

SendSms = Callable[[str, str, str], Awaitable[str]]


class ReplyRefused(Exception):
    """A reply that must be bounced; ``reply`` is the full SMTP reply line."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(frozen=True)
class ReplyTarget:
    mailbox: Mailbox
    caller: str  # E.164
    expires_day: int


def _key(config: Config) -> bytes:
    return hmac.new(config.server.secret_key.encode(), _CONTEXT, hashlib.sha256).digest()


def _mac(config: Config, data: bytes) -> bytes:
    return hmac.new(_key(config), data, hashlib.sha256).digest()[:_MAC_BYTES]


def _mask(config: Config, mac: bytes) -> bytes:
    """The pad over the caller's digits: Reply-To is an outer header the IMAP server reads, and a
    private mailbox must not show it who called (SIV-style: the pad derives from the MAC)."""
    return hmac.new(_key(config), b"caller-mask" + mac, hashlib.sha256).digest()[:7]


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def make_token(config: Config, mailbox_id: str, caller: str, *, now: float | None = None) -> str:
    """``base32(version | expiry | masked caller | mac | mailbox id)``: lower-case, fits an RFC 5321
    local part. Base32 rather than base64url because some mail systems change the case of local parts.
    """
    assert config.smtp_ingress is not None
    days = int((time.time() if now is None else now) // _DAY) + config.smtp_ingress.reply_token_days
    digits = int(caller[1:]).to_bytes(7, "big")
    box = mailbox_id.encode()
    mac = _mac(config, _HEAD.pack(_VERSION, days, digits) + box)
    raw = _HEAD.pack(_VERSION, days, _xor(digits, _mask(config, mac))) + mac + box
    return base64.b32encode(raw).decode().rstrip("=").lower()


def reply_address(config: Config, mailbox: Mailbox, caller: str | None) -> str | None:
    """The Reply-To address for a voicemail in ``mailbox`` from ``caller``; None when nobody can be texted."""
    ingress = config.smtp_ingress
    if ingress is None or not config.twilio.sms_from or not caller or not phone.is_e164(caller):
        return None
    if not mailbox.email:
        return None  # nobody could prove to be the owner
    return f"{PREFIX}{make_token(config, mailbox.id, caller)}@{ingress.reply_domain}"


def verify_token(config: Config, token: str, *, now: float | None = None) -> ReplyTarget:
    """The mailbox and caller a token names; ReplyRefused (550) when forged, mangled or expired."""
    forged = ReplyRefused("550 5.7.1 This reply address is not valid; no SMS was sent")
    try:
        raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8))
    except ValueError:
        raise forged from None
    if len(raw) < _HEAD.size + _MAC_BYTES + 1:
        raise forged
    head, mac, box = (
        raw[: _HEAD.size],
        raw[_HEAD.size : _HEAD.size + _MAC_BYTES],
        raw[_HEAD.size + _MAC_BYTES :],
    )
    version, days, digits = _HEAD.unpack(head)
    if version == _VERSION:
        digits = _xor(digits, _mask(config, mac))
        head = _HEAD.pack(version, days, digits)
    if not hmac.compare_digest(mac, _mac(config, head + box)):
        raise forged
    mailbox = config.mailboxes.get(box.decode(errors="replace"))
    if version not in (1, _VERSION) or mailbox is None:
        raise forged
    if days < int((time.time() if now is None else now) // _DAY):
        raise ReplyRefused("550 5.7.1 This reply address has expired; no SMS was sent")
    return ReplyTarget(mailbox=mailbox, caller=f"+{int.from_bytes(digits, 'big')}", expires_day=days)


# -- the reply's text -------------------------------------------------------------------------------------
_ATTRIBUTION = re.compile(
    r"^(On\b.*\bwrote:|Am\b.*\bschrieb\b.*:|-{2,}\s*Original Message\s*-{2,}|_{10,}|From:\s.*)\s*$",
    re.IGNORECASE,
)
_ATTRIBUTION_START = re.compile(r"^(On|Am)\s", re.IGNORECASE)
_ATTRIBUTION_END = re.compile(r"(wrote|schrieb)\s*:\s*$", re.IGNORECASE)


def reply_text(message: EmailMessage, max_chars: int) -> str:
    """The new text of a reply: text/plain only, without quotes, attribution lines or signature."""
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        kind = "HTML only" if message.get_body(preferencelist=("html",)) is not None else "no text"
        raise ReplyRefused(f"550 5.6.3 The reply has {kind}; send it as plain text. No SMS was sent")
    try:
        text = part.get_content()
    except (LookupError, ValueError):
        raise ReplyRefused("550 5.6.3 The reply's text cannot be decoded; no SMS was sent") from None
    lines = str(text).replace("\r\n", "\n").split("\n")
    kept: list[str] = []
    for i, line in enumerate(lines):
        if line == "-- " or line.rstrip() == "--":  # RFC 3676 §4.3 signature separator
            break
        if _ATTRIBUTION.match(line.strip()):
            break
        following = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if _ATTRIBUTION_START.match(line) and _ATTRIBUTION_END.search(following):
            break  # "On Mon, 23 Nov 2026, Anna <a@b>" / "wrote:" wrapped over two lines
        if line.lstrip().startswith(">"):
            continue
        kept.append(line.rstrip())
    cleaned = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
    if not cleaned:
        raise ReplyRefused("550 5.6.0 The reply has no text of its own; no SMS was sent")
    return cut(cleaned, max_chars)


def cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, ending at a word boundary where there is one in the
    second half (a single long word is cut hard): an SMS that ends mid-word reads as an error."""
    if len(text) <= limit:
        return text
    head = text[: limit + 1]
    space = max(head.rfind(" "), head.rfind("\n"))
    return (text[:space] if space > limit // 2 else text[:limit]).rstrip()


def _is_auto_reply(message: EmailMessage) -> bool:
    """RFC 3834 §5 Auto-Submitted, plus the headers common vacation responders set."""
    auto = str(message.get("Auto-Submitted", "no")).strip().lower()
    precedence = str(message.get("Precedence", "")).strip().lower()
    return auto != "no" or precedence in ("bulk", "junk", "list", "auto_reply") or "X-Autoreply" in message


def _sender(message: EmailMessage) -> str | None:
    addresses = getaddresses([str(value) for value in message.get_all("From", [])])
    if len(addresses) != 1 or "@" not in addresses[0][1]:
        return None
    return addresses[0][1].lower()


# -- sending, exactly once --------------------------------------------------------------------------------
@dataclass
class ReplySender:
    """Checks a reply and sends its SMS before the SMTP ``250``, recording each reply durably first.

    The SMS goes out while the client waits, so a refusal by Twilio (not SMS-capable, 21614) becomes a
    5xx the owner's mail server turns into a bounce, and a Twilio outage a 451 it retries later. A marker
    file (``O_EXCL``, fsynced) is written before sending: a retried or duplicated reply finds it and gets
    ``250`` without a second SMS. If the process dies between the marker and the SMS, the retry is also
    answered ``250`` without sending: at most once, never twice.
    """

    config: Callable[[], Config]
    send_sms: SendSms
    root: Path  # <spool>/replies

    async def handle(self, target: ReplyTarget, message: EmailMessage, raw: bytes) -> str:
        config = self.config()
        ingress = config.smtp_ingress
        assert ingress is not None
        owner = (target.mailbox.email or "").lower()
        if not owner or _sender(message) != owner:
            raise ReplyRefused(
                "550 5.7.1 Only the mailbox owner's address may reply to this caller; no SMS was sent"
            )
        if _is_auto_reply(message):
            raise ReplyRefused("550 5.7.1 Automatic replies are not sent to callers")
        if not config.twilio.sms_from:
            raise ReplyRefused("550 5.3.0 SMS replies are not configured on this gateway")
        text = reply_text(message, ingress.reply_max_chars)
        message_id = str(message.get("Message-ID", "")).strip() or hashlib.sha256(raw).hexdigest()
        key = hashlib.sha256(f"{target.mailbox.id}\0{target.caller}\0{message_id}".encode()).hexdigest()[:32]
        try:
            sid = await self.send_once(target, text, key)
        except TelephonyError as exc:
            if exc.temporary:
                return "451 4.4.0 The SMS service is unavailable; try again later"
            raise ReplyRefused(
                "550 5.1.1 The caller's number cannot receive SMS (or refused it); no SMS was sent"
            ) from exc
        if sid is None:
            return "250 2.0.0 Reply already sent"
        return f"250 2.0.0 Sent to the caller as SMS {sid}"

    async def send_once(self, target: ReplyTarget, text: str, key: str) -> str | None:
        """Send ``text`` to the caller at most once per ``key`` (also used by the web inbox).

        The SMS sid, or None when ``key`` was sent (or claimed) before; TelephonyError when Twilio
        refused or failed, after releasing the claim so a later retry may send.
        """
        sender = self.config().twilio.sms_from
        if not sender:
            raise TelephonyError("SMS replies are not configured (twilio.sms_from)", temporary=False)
        if not await asyncio.to_thread(self._claim, key, target):
            log.info("reply %s to mailbox %s already handled: not sent again", key, target.mailbox.id)
            return None
        try:
            sid = await self.send_sms(sender, target.caller, text)
        except TelephonyError as exc:
            await asyncio.to_thread(self._release, key)
            log.warning("reply %s for mailbox %s not sent: %s", key, target.mailbox.id, exc)
            raise
        await asyncio.to_thread(self._settle, key, sid)
        log.info("reply %s for mailbox %s sent as SMS %s", key, target.mailbox.id, sid)
        return sid

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def _claim(self, key: str, target: ReplyTarget) -> bool:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        record = {"state": "sending", "mailbox": target.mailbox.id, "at": time.time()}
        try:
            fd = os.open(self._path(key), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        try:
            os.write(fd, json.dumps(record).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(self.root)
        return True

    def _settle(self, key: str, sid: str) -> None:
        tmp = self.root / f".{key}.tmp"
        tmp.write_text(json.dumps({"state": "sent", "sid": sid, "at": time.time()}))
        os.replace(tmp, self._path(key))

    def _release(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()
        fsync_dir(self.root)
