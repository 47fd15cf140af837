"""Reply-To tokens on voicemail e-mails, and turning the owner's e-mail reply into exactly one SMS."""

from __future__ import annotations

import hashlib
import logging
import re
from email.message import EmailMessage
from email.utils import getaddresses

from vm2mail.config.model import Config
from vm2mail.errors import SignatureError, TelephonyError
from vm2mail.replies import ReplySender, ReplyTarget
from vm2mail.signing import REPLY_PREFIX, ReplyTokenExpired, make_reply_token, open_reply_token

log = logging.getLogger(__name__)

PREFIX = REPLY_PREFIX


class ReplyRefused(Exception):
    """A reply that must be bounced; ``reply`` is the full SMTP reply line."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


def make_token(config: Config, mailbox_id: str, caller: str, *, now: float | None = None) -> str:
    """The Reply-To token for ``caller`` in ``mailbox_id`` (the codec lives in vm2mail.signing)."""
    return make_reply_token(config, mailbox_id, caller, now=now)


def verify_token(config: Config, token: str, *, now: float | None = None) -> ReplyTarget:
    """The mailbox and caller a token names; ReplyRefused (550) when forged, mangled or expired."""
    try:
        mailbox, caller, days = open_reply_token(config, token, now=now)
    except ReplyTokenExpired:
        raise ReplyRefused("550 5.7.1 This reply address has expired; no SMS was sent") from None
    except SignatureError:
        raise ReplyRefused("550 5.7.1 This reply address is not valid; no SMS was sent") from None
    return ReplyTarget(mailbox=mailbox, caller=caller, expires_day=days)


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


# -- the SMTP answer -------------------------------------------------------------------------------------
class EmailReplies(ReplySender):
    """Checks an e-mail reply and sends its SMS before the SMTP ``250`` (at most once, by ReplySender).

    The SMS goes out while the client waits, so a refusal by Twilio (not SMS-capable, 21614) becomes a
    5xx the owner's mail server turns into a bounce, and a Twilio outage a 451 it retries later. A
    retried or duplicated reply gets ``250`` without a second SMS.
    """

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
        try:
            sid = await self.send_once(target, text, message_id)
        except TelephonyError as exc:
            if exc.temporary:
                return "451 4.4.0 The SMS service is unavailable; try again later"
            raise ReplyRefused(
                "550 5.1.1 The caller's number cannot receive SMS (or refused it); no SMS was sent"
            ) from exc
        if sid is None:
            return "250 2.0.0 Reply already sent"
        return f"250 2.0.0 Sent to the caller as SMS {sid}"
