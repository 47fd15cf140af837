"""One codec for every token the gateway signs: menu state, media URLs, PIN entries and Reply-To addresses.

Every token is an HMAC-SHA256 (RFC 2104) under a key derived from ``server.secret_key`` with a label
of its own (domain separation), so a token made for one purpose never passes for another. Two wire
shapes exist: ``seal`` (base64url JSON, a dot, base64url MAC; for URLs) and the compact reply token
(base32, truncated MAC; it must fit an RFC 5321 local part). The wire shapes are those the gateway
has always issued, so tokens in flight and Reply-To addresses in delivered e-mails stay valid.

Service layer: imports only config and errors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import struct
import time
from typing import Any

from vm2mail.config.model import Config, Mailbox
from vm2mail.errors import SignatureError


def derive_key(secret: str, label: bytes) -> bytes:
    """The key for one purpose: HMAC(secret, label)."""
    return hmac.new(secret.encode("utf-8"), label, hashlib.sha256).digest()


def mac(secret: str, label: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 of ``data`` under the key derived for ``label``."""
    return hmac.new(derive_key(secret, label), data, hashlib.sha256).digest()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal(secret: str, label: bytes, value: Any) -> str:
    """``payload.mac``: base64url compact JSON of ``value`` and its MAC under ``label``."""
    payload = b64(json.dumps(value, separators=(",", ":")).encode("utf-8"))
    return f"{payload}.{b64(mac(secret, label, payload.encode('ascii')))}"


def unseal(secret: str, label: bytes, token: str) -> Any:
    """The JSON value of a token made by ``seal`` with the same label; SignatureError otherwise."""
    payload, dot, given = token.partition(".")
    if not dot or not payload or not given:
        raise SignatureError("malformed token")
    expected = mac(secret, label, payload.encode("ascii", "replace"))
    try:
        if not hmac.compare_digest(unb64(given), expected):
            raise SignatureError("token signature does not match")
        return json.loads(unb64(payload))
    except (binascii.Error, ValueError, TypeError) as exc:
        raise SignatureError(f"malformed token: {type(exc).__name__}") from exc


# -- Reply-To tokens: the owner's e-mail reply to a voicemail becomes an SMS to the caller ---------------
REPLY_PREFIX = "reply+"
_REPLY_VERSION = 1
_REPLY_LABEL = b"vm2mail smtp reply token v1"
_REPLY_MAC_BYTES = 10  # 80 bits: a forger gets one guess per SMTP transaction
_REPLY_HEAD = struct.Struct(">BH7s")  # version, expiry (days since 1970), caller digits (uint56)
_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
DAY = 86400


class ReplyTokenExpired(SignatureError):
    """A genuine reply token whose validity has run out."""


def make_reply_token(config: Config, mailbox_id: str, caller: str, *, now: float | None = None) -> str:
    """``base32(version | expiry | caller | mac | mailbox id)``: lower-case, fits an RFC 5321 local part.

    Base32 rather than base64url because some mail systems change the case of local parts.
    """
    assert config.smtp_ingress is not None
    days = int((time.time() if now is None else now) // DAY) + config.smtp_ingress.reply_token_days
    head = _REPLY_HEAD.pack(_REPLY_VERSION, days, int(caller[1:]).to_bytes(7, "big"))
    box = mailbox_id.encode()
    tag = mac(config.server.secret_key, _REPLY_LABEL, head + box)[:_REPLY_MAC_BYTES]
    return base64.b32encode(head + tag + box).decode().rstrip("=").lower()


def open_reply_token(config: Config, token: str, *, now: float | None = None) -> tuple[Mailbox, str, int]:
    """(mailbox, caller, expiry day) of a reply token; SignatureError (ReplyTokenExpired) otherwise."""
    try:
        raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8))
    except ValueError:
        raise SignatureError("reply token is not base32") from None
    size = _REPLY_HEAD.size
    if len(raw) < size + _REPLY_MAC_BYTES + 1:
        raise SignatureError("reply token too short")
    head, tag, box = raw[:size], raw[size : size + _REPLY_MAC_BYTES], raw[size + _REPLY_MAC_BYTES :]
    expected = mac(config.server.secret_key, _REPLY_LABEL, head + box)[:_REPLY_MAC_BYTES]
    if not hmac.compare_digest(tag, expected):
        raise SignatureError("reply token signature does not match")
    version, days, digits = _REPLY_HEAD.unpack(head)
    mailbox = config.mailboxes.get(box.decode(errors="replace"))
    if version != _REPLY_VERSION or mailbox is None:
        raise SignatureError("reply token names no mailbox")
    if days < int((time.time() if now is None else now) // DAY):
        raise ReplyTokenExpired("reply token expired")
    return mailbox, f"+{int.from_bytes(digits, 'big')}", days


def reply_address(config: Config, mailbox: Mailbox, caller: str | None) -> str | None:
    """The Reply-To address for a voicemail in ``mailbox`` from ``caller``; None when nobody can be texted."""
    ingress = config.smtp_ingress
    if ingress is None or not config.twilio.sms_from or not caller or not _E164.match(caller):
        return None
    if not mailbox.email:
        return None  # nobody could prove to be the owner
    return f"{REPLY_PREFIX}{make_reply_token(config, mailbox.id, caller)}@{ingress.reply_domain}"
