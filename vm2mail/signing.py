"""One codec module for every token the gateway signs: menu state, media URLs, PINs, Reply-To addresses.

Every token is an HMAC-SHA256 (RFC 2104) under a key derived from ``server.secret_key`` with a label
of its own (domain separation), so a token made for one purpose never passes for another. Two wire
shapes exist: ``seal`` (base64url JSON, a dot, base64url MAC; for URLs) and the compact reply token
(base32, truncated MAC; it must fit an RFC 5321 local part). Reply tokens of version 1
(readable caller digits) are still accepted, so Reply-To addresses in delivered e-mails stay valid.

Media URLs are also encrypted (``seal_secret``): they must not tell Twilio's or a proxy's logs which
mailbox and message a caller listened to.

Service layer: imports only config, errors and phone (base).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import struct
import time
from typing import Any

from vm2mail import phone
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


# -- sealed tokens: signed and encrypted, for URLs that end up in other people's logs ---------------------
_NONCE_BYTES = 12
_SEALED_MAC_BYTES = 16


def _keystream(secret: str, seal_label: bytes, nonce: bytes, size: int) -> bytes:
    """SHAKE-256 as an XOF over the sealing key and the nonce."""
    return hashlib.shake_256(derive_key(secret, seal_label) + nonce).digest(size)


def seal_secret(secret: str, label: bytes, seal_label: bytes, value: Any) -> str:
    """An opaque token: nonce, the JSON of ``value`` encrypted, HMAC-SHA256 over both (encrypt-then-MAC)."""
    plain = json.dumps(value, separators=(",", ":")).encode("utf-8")
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = nonce + _xor(plain, _keystream(secret, seal_label, nonce, len(plain)))
    return b64(sealed + mac(secret, label, sealed)[:_SEALED_MAC_BYTES])


def open_secret(secret: str, label: bytes, seal_label: bytes, token: str) -> Any:
    """The value in a token made by ``seal_secret`` with the same labels; SignatureError otherwise."""
    try:
        raw = unb64(token)
    except (binascii.Error, ValueError):
        raise SignatureError("malformed token") from None
    if len(raw) <= _NONCE_BYTES + _SEALED_MAC_BYTES:
        raise SignatureError("token too short")
    sealed, tag = raw[:-_SEALED_MAC_BYTES], raw[-_SEALED_MAC_BYTES:]
    if not hmac.compare_digest(tag, mac(secret, label, sealed)[:_SEALED_MAC_BYTES]):
        raise SignatureError("token signature does not match")
    nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    try:
        return json.loads(_xor(body, _keystream(secret, seal_label, nonce, len(body))))
    except ValueError as exc:
        raise SignatureError(f"malformed token: {type(exc).__name__}") from exc


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


# -- Reply-To tokens: the owner's e-mail reply to a voicemail becomes an SMS to the caller ---------------
REPLY_PREFIX = "reply+"
_REPLY_VERSION = 2  # v2 masks the caller's digits (v1 tokens, with readable digits, are still accepted)
_REPLY_LABEL = b"vm2mail smtp reply token v1"
_REPLY_MAC_BYTES = 10  # 80 bits: a forger gets one guess per SMTP transaction
_REPLY_HEAD = struct.Struct(">BH7s")  # version, expiry (days since 1970), caller digits (uint56)
DAY = 86400


class ReplyTokenExpired(SignatureError):
    """A genuine reply token whose validity has run out."""


def _reply_mac(config: Config, data: bytes) -> bytes:
    return mac(config.server.secret_key, _REPLY_LABEL, data)[:_REPLY_MAC_BYTES]


def _reply_mask(config: Config, tag: bytes) -> bytes:
    """The pad over the caller's digits: Reply-To is an outer header the IMAP server reads, and a
    private mailbox must not show it who called (SIV-style: the pad derives from the MAC)."""
    key = derive_key(config.server.secret_key, _REPLY_LABEL)
    return hmac.new(key, b"caller-mask" + tag, hashlib.sha256).digest()[:7]


def make_reply_token(config: Config, mailbox_id: str, caller: str, *, now: float | None = None) -> str:
    """``base32(version | expiry | masked caller | mac | mailbox id)``: lower-case, fits an RFC 5321
    local part. Base32 rather than base64url because some mail systems change the case of local parts.
    """
    assert config.smtp_ingress is not None
    days = int((time.time() if now is None else now) // DAY) + config.smtp_ingress.reply_token_days
    digits = int(caller[1:]).to_bytes(7, "big")
    box = mailbox_id.encode()
    tag = _reply_mac(config, _REPLY_HEAD.pack(_REPLY_VERSION, days, digits) + box)
    raw = _REPLY_HEAD.pack(_REPLY_VERSION, days, _xor(digits, _reply_mask(config, tag))) + tag + box
    return base64.b32encode(raw).decode().rstrip("=").lower()


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
    version, days, digits = _REPLY_HEAD.unpack(head)
    if version == _REPLY_VERSION:
        digits = _xor(digits, _reply_mask(config, tag))
        head = _REPLY_HEAD.pack(version, days, digits)
    if not hmac.compare_digest(tag, _reply_mac(config, head + box)):
        raise SignatureError("reply token signature does not match")
    mailbox = config.mailboxes.get(box.decode(errors="replace"))
    if version not in (1, _REPLY_VERSION) or mailbox is None:
        raise SignatureError("reply token names no mailbox")
    if days < int((time.time() if now is None else now) // DAY):
        raise ReplyTokenExpired("reply token expired")
    return mailbox, f"+{int.from_bytes(digits, 'big')}", days


def reply_address(config: Config, mailbox: Mailbox, caller: str | None) -> str | None:
    """The Reply-To address for a voicemail in ``mailbox`` from ``caller``; None when nobody can be texted."""
    ingress = config.smtp_ingress
    if ingress is None or not config.twilio.sms_from or not caller or not phone.is_e164(caller):
        return None
    if not mailbox.email:
        return None  # nobody could prove to be the owner
    return f"{REPLY_PREFIX}{make_reply_token(config, mailbox.id, caller)}@{ingress.reply_domain}"
