"""Short notification and alert e-mails through the configured SMTP relay (smtplib in a thread)."""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from vm2mail.config.model import SmtpRelayConfig
from vm2mail.errors import Vm2mailError

log = logging.getLogger(__name__)

# Replies that mean the relay is misconfigured on our side (RFC 4954 §6 AUTH, RFC 3207 STARTTLS):
# fixing the configuration makes the same message go through, so they count as temporary.
_CONFIG_CODES = frozenset({454, 530, 534, 535, 538})


class NotifyError(Vm2mailError):
    """A notification or alert could not be sent; ``temporary`` when a later attempt may succeed."""


def compose(relay: SmtpRelayConfig, to: str, subject: str, body: str) -> EmailMessage:
    """A plain-text message from the relay's sender, marked automatic so nobody auto-replies to it."""
    message = EmailMessage(policy=SMTP)
    message["From"] = relay.sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid("vm2mail", domain=relay.sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5: no vacation replies to notices
    message.set_content(body)
    return message


def _context(relay: SmtpRelayConfig) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if relay.ca_file is not None:
        ctx.load_verify_locations(cafile=str(relay.ca_file))
    return ctx


def _send_sync(relay: SmtpRelayConfig, message: EmailMessage, to: str) -> None:
    client: smtplib.SMTP
    limit = relay.timeout_seconds  # smtplib applies it to the connect and to every read and write
    if relay.security == "tls":  # RFC 8314 implicit TLS (port 465)
        client = smtplib.SMTP_SSL(relay.host, relay.port, timeout=limit, context=_context(relay))
    else:
        client = smtplib.SMTP(relay.host, relay.port, timeout=limit)
    with client:
        client.ehlo()
        if relay.security == "starttls":
            # RFC 3207: never fall back to plaintext when STARTTLS was asked for (raises if not offered).
            client.starttls(context=_context(relay))
            client.ehlo()
        if relay.user:
            client.login(relay.user, relay.password or "")
        client.send_message(message, from_addr=relay.sender, to_addrs=[to])


def classify(exc: Exception) -> bool:
    """Whether sending again later may succeed (True) or the relay refused this message for good."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return not codes or any(code < 500 or code in _CONFIG_CODES for code in codes)
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code < 500 or exc.smtp_code in _CONFIG_CODES
    return True  # connection refused, timeouts, TLS failures, STARTTLS not offered: try again later


async def send_mail(relay: SmtpRelayConfig, to: str, subject: str, body: str, *, what: str) -> None:
    """Send one short e-mail to ``to``; NotifyError with ``temporary`` set as ``classify`` says.

    ``what`` names the notice in logs (e.g. "notify 201/Voicemail uid=7"); the body is never logged.
    """
    message = compose(relay, to, subject, body)
    try:
        await asyncio.to_thread(_send_sync, relay, message, to)
    except (smtplib.SMTPException, OSError) as exc:
        temporary = classify(exc)
        # smtplib puts the server's reply text in the exception; it never contains our password.
        raise NotifyError(
            f"{what}: e-mail to {to} via {relay.host}:{relay.port} failed: {type(exc).__name__}: {exc}",
            temporary=temporary,
        ) from exc
    log.info("%s: e-mail sent to %s via %s:%d", what, to, relay.host, relay.port)
