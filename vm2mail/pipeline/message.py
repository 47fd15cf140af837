"""Compose the voicemail e-mail (RFC 5322/2045 MIME) and, for mailboxes with keys, wrap it in PGP/MIME."""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path

from vm2mail import phone
from vm2mail.config.model import Mailbox
from vm2mail.crypto.pgp import Encryptor
from vm2mail.errors import CryptoError
from vm2mail.jobs.jobs import MISSED_CALL, VOICEMAIL, CallInfo
from vm2mail.pipeline import wording
from vm2mail.templating import environment, language_template

GENERIC_SUBJECT = "Voicemail"  # outer Subject of encrypted mail for private mailboxes
GENERIC_SENDER = "Voicemail"  # outer From display name of encrypted mail for private mailboxes
# Header fields that name or describe the caller: in a private mailbox they exist only inside the
# encryption (protected headers), so neither the IMAP server nor its indexes learn who called.
CALLER_FIELDS = frozenset(
    {"from", "subject", "x-vm2mail-caller", "x-vm2mail-caller-name",
     "x-vm2mail-caller-extension", "x-vm2mail-called", "x-vm2mail-duration"}
)  # fmt: skip
_TEMPLATE_NAMES = {VOICEMAIL: "voicemail", MISSED_CALL: "missed"}
_PREAMBLE = "This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n"


@dataclass(frozen=True, kw_only=True)
class Voicemail:
    """Everything one copy of one voicemail (or missed call) e-mail is made from."""

    kind: str  # jobs.VOICEMAIL or jobs.MISSED_CALL
    recipient: Mailbox  # the mailbox whose folder gets this copy (a group member for group copies)
    mailbox: Mailbox  # the mailbox that was called (the group itself for group copies)
    message_id: str  # "<RE...@domain>": the outer Message-ID, the IMAP idempotency key
    call: CallInfo
    started: datetime  # aware: when the recording (or call) started
    duration: float | None  # seconds; None for a missed call
    mail_domain: str  # From: "<caller name or number>" <voicemail@mail_domain>
    mp3: Path | None  # the attachment (None for a missed call)
    reply_to: str | None = None  # "reply+<token>@…": a reply by e-mail becomes an SMS to the caller


def attachment_name(vm: Voicemail) -> str:
    """``voicemail-2026-11-23-1030-+4930123.mp3``: local time of the recipient, then who called."""
    local = vm.started.astimezone(vm.recipient.tz)
    who = re.sub(r"[^A-Za-z0-9+]", "", vm.call.caller or "") or "anonymous"
    return f"voicemail-{local:%Y-%m-%d-%H%M}-{who}.mp3"


def template_context(vm: Voicemail) -> dict[str, object]:
    """The variables every e-mail template receives."""
    started = vm.started.astimezone(vm.recipient.tz)
    return {
        "kind": vm.kind,
        "is_voicemail": vm.kind == VOICEMAIL,
        "caller": vm.call.caller,
        "caller_name": wording.name_of(vm.call),
        "caller_display": wording.number_shown(vm.call, vm.recipient),  # "030 1234567" at home
        "caller_extension": vm.call.extension,
        "who": wording.who(vm.call, vm.recipient),  # name, number, extension or "Withheld number"
        "callback_uri": phone.tel_uri(vm.call.caller, vm.call.extension),  # RFC 3966, E.164 callers only
        "called": vm.call.called,
        "called_display": phone.display(vm.call.called, vm.recipient.country) or vm.call.called,
        "call_id": vm.call.call_sid,
        "mailbox_id": vm.mailbox.id,
        "mailbox_name": vm.mailbox.name,
        "is_group": vm.mailbox.is_group,
        "recipient_name": vm.recipient.name,
        "started": started,
        "tz_abbr": started.tzname() or "",
        "duration": vm.duration,
        "attachment": attachment_name(vm) if vm.mp3 is not None else None,
        "message_id": vm.message_id,
    }


def render(vm: Voicemail, templates_dir: Path | None) -> tuple[str, str, str]:
    """Subject, plain text and HTML from ``email/<language>/<kind>.{subject,txt,html}.j2``."""
    env = environment(templates_dir)
    context = template_context(vm)
    base = _TEMPLATE_NAMES[vm.kind]
    lang = vm.recipient.language

    def one(suffix: str) -> str:
        name = language_template("email", lang, f"{base}.{suffix}.j2", templates_dir)
        return env.get_template(name).render(**context)

    return wording.clean(one("subject")), one("txt"), one("html")


def _headers(vm: Voicemail, subject: str) -> list[tuple[str, object]]:
    """The readable header fields, in order; the menu and watcher read only these (never bodies)."""
    if vm.started.tzinfo is None:
        raise ValueError("Voicemail.started must be timezone-aware")
    if any(ch in vm.message_id for ch in "\r\n") or not vm.message_id.startswith("<"):
        raise ValueError(f"bad Message-ID {vm.message_id!r}")
    rcpt = vm.recipient
    to_addr = rcpt.email or f"{rcpt.id}@{vm.mail_domain}"
    caller_name = wording.name_of(vm.call)
    headers: list[tuple[str, object]] = [
        # email.headerregistry encodes non-ASCII display names as RFC 2047 encoded-words.
        (
            "From",
            Address(display_name=wording.who(vm.call, rcpt), addr_spec=f"voicemail@{vm.mail_domain}"),
        ),
        ("To", Address(display_name=wording.clean(rcpt.name), addr_spec=to_addr)),
        ("Date", vm.started.astimezone(rcpt.tz)),  # RFC 5322 §3.3, with the recipient's offset
        ("Subject", subject),
        ("Message-ID", vm.message_id),
        ("Auto-Submitted", "auto-generated"),  # RFC 3834 §5: no auto-replies to us
    ]
    if vm.reply_to:
        headers.append(("Reply-To", vm.reply_to))  # RFC 5322 §3.6.2; vm2mail.smtp.replies signs it
    headers += [
        ("X-Vm2mail-Kind", vm.kind),
    ]
    if vm.call.caller or not vm.call.extension:
        headers.append(("X-Vm2mail-Caller", vm.call.caller or "anonymous"))
    if vm.call.extension:
        headers.append(("X-Vm2mail-Caller-Extension", vm.call.extension))
    if caller_name:
        headers.append(("X-Vm2mail-Caller-Name", caller_name))
    headers += [
        ("X-Vm2mail-Called", vm.call.called),
        ("X-Vm2mail-Duration", str(round(vm.duration or 0))),
        ("X-Vm2mail-Mailbox", vm.mailbox.id),
        ("X-Vm2mail-Call-Id", vm.call.call_sid),
    ]
    return headers


def _boundary() -> str:
    """A MIME boundary (RFC 2046 §5.1.1) that cannot occur in our parts' bodies, so none is searched.

    Without one, the email package scans the whole serialized body for a free boundary, once per
    multipart: for a voicemail that was a tenth of the compose time. "=_" never occurs in
    quoted-printable text (it is not a valid escape) nor in base64 or ASCII armor ("_" is not in
    their alphabets).
    """
    return f"=_vm2mail_{secrets.token_hex(12)}"


def _set(msg: EmailMessage, headers: list[tuple[str, object]]) -> None:
    for name, value in headers:
        msg[name] = value


class _Bulk:
    """Large bodies spliced into the serialized message in place of short stand-ins.

    The email package writes bodies line by line in Python, which for a voicemail's base64 MP3 and
    its ASCII armor was half the compose time; the stand-in's lines are replaced by the same lines
    made in one C call (same 76-column base64, same CRLF), so the bytes are identical.
    """

    def __init__(self) -> None:
        self.parts: list[tuple[bytes, bytes]] = []

    def stand_in(self, body: bytes) -> bytes:
        token = f"vm2mail-bulk-{secrets.token_hex(16)}".encode()
        self.parts.append((token, body))
        return token

    def splice(self, serialized: bytes) -> bytes:
        for token, body in self.parts:
            serialized = serialized.replace(token, body, 1)
        return serialized


def _crlf_base64(data: bytes) -> bytes:
    """RFC 2045 §6.8 base64 in 76-character lines with CRLF line ends, as the email package writes it."""
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _mixed(
    vm: Voicemail, text: str, html: str, headers: list[tuple[str, object]], bulk: _Bulk
) -> EmailMessage:
    """``multipart/mixed`` of ``multipart/alternative`` (text, HTML) and the MP3, headers first."""
    alternative = EmailMessage(policy=SMTP)
    # Quoted-printable keeps the parts 7-bit: safe for any IMAP server and canonical for PGP/MIME.
    alternative.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    alternative.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    alternative.set_boundary(_boundary())

    root = EmailMessage(policy=SMTP)
    _set(root, headers)
    root.make_mixed()
    root.set_boundary(_boundary())
    root.attach(alternative)
    if vm.mp3 is not None:
        audio = EmailMessage(policy=SMTP)
        audio.set_content(
            b"",
            maintype="audio",
            subtype="mpeg",  # RFC 3003
            disposition="attachment",
            filename=attachment_name(vm),
        )
        audio.set_payload(bulk.stand_in(_crlf_base64(vm.mp3.read_bytes())).decode("ascii"))
        root.attach(audio)
    # set_content() adds MIME-Version to each part; it belongs on the message only (RFC 2045 §4).
    for part in root.walk():
        if part is not root:
            del part["MIME-Version"]
    return root


def _pgp_mime(headers: list[tuple[str, object]], armored: bytes, bulk: _Bulk) -> EmailMessage:
    """RFC 3156 §4: ``multipart/encrypted`` with the version part and the armored payload, both 7bit."""
    outer = EmailMessage(policy=SMTP)
    _set(outer, headers)
    outer["MIME-Version"] = "1.0"
    outer["Content-Type"] = (
        f'multipart/encrypted; protocol="application/pgp-encrypted"; boundary="{_boundary()}"'
    )
    outer.preamble = _PREAMBLE

    version = EmailMessage(policy=SMTP)
    version["Content-Type"] = "application/pgp-encrypted"
    version["Content-Description"] = "PGP/MIME version identification"
    version["Content-Transfer-Encoding"] = "7bit"
    version.set_payload("Version: 1\r\n")

    payload = EmailMessage(policy=SMTP)
    payload["Content-Type"] = 'application/octet-stream; name="encrypted.asc"'
    payload["Content-Description"] = "OpenPGP encrypted message"
    payload["Content-Disposition"] = 'inline; filename="encrypted.asc"'
    payload["Content-Transfer-Encoding"] = "7bit"
    armored_crlf = armored.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    payload.set_payload(bulk.stand_in(armored_crlf).decode("ascii"))

    outer.attach(version)
    outer.attach(payload)
    return outer


def compose(
    vm: Voicemail,
    *,
    templates_dir: Path | None,
    encryptor: Encryptor | None,
    extra_recipients: Sequence[str] = (),
) -> bytes:
    """The finished message as CRLF bytes, ready for IMAP APPEND (RFC 3501 §6.3.11).

    Blocking: it reads the MP3 and, when encrypting, runs gpg; call it via ``asyncio.to_thread``.
    A recipient with ``gpg_recipients`` is encrypted to those keys plus ``extra_recipients`` (the
    gateway's playback key); without an ``encryptor`` such a recipient raises CryptoError rather than
    receive plaintext. Raises CryptoError for unusable keys, OSError if the MP3 cannot be read.
    """
    if vm.kind not in _TEMPLATE_NAMES:
        raise ValueError(f"unknown voicemail kind {vm.kind!r}")
    subject, text, html = render(vm, templates_dir)
    headers = _headers(vm, subject)
    keys = vm.recipient.gpg_recipients
    if not keys:
        bulk = _Bulk()
        return bulk.splice(_mixed(vm, text, html, [*headers, ("MIME-Version", "1.0")], bulk).as_bytes())
    if encryptor is None:
        raise CryptoError(
            f"mailbox {vm.recipient.id} has gpg_recipients but no encryptor is configured", temporary=False
        )

    outer_headers = _outer(vm, headers)
    # Protected headers: the inner root repeats every header field (RFC 9788 §2), lists what the outer
    # message showed in HP-Outer fields (RFC 9788 §2.2), and is marked both the RFC 9788 way
    # (hp="cipher") and the older way clients still read (protected-headers="v1").
    hp_outer: list[tuple[str, object]] = [("HP-Outer", f"{n}: {_plain(v)}") for n, v in outer_headers]
    bulk = _Bulk()
    inner = _mixed(vm, text, html, headers + hp_outer, bulk)
    inner.set_param("protected-headers", "v1")
    inner.set_param("hp", "cipher")
    # RFC 3156 §3: the encrypted entity is the canonical (CRLF) MIME form: policy SMTP writes CRLF.
    armored = encryptor.encrypt(bulk.splice(inner.as_bytes()), [*keys, *extra_recipients])
    outer_bulk = _Bulk()
    return outer_bulk.splice(_pgp_mime(outer_headers, armored, outer_bulk).as_bytes())


def _outer(vm: Voicemail, headers: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """The header fields the IMAP server sees on an encrypted message.

    ``private``: "Voicemail" from a generic sender and nothing about the caller (no name, number,
    called number, length, Reply-To); the protected headers inside repeat them all. ``private_subject``
    (deprecated) only replaces the Subject.
    """
    rcpt = vm.recipient
    if rcpt.private:
        sender = Address(display_name=GENERIC_SENDER, addr_spec=f"voicemail@{vm.mail_domain}")
        generic: dict[str, object] = {"from": sender, "subject": GENERIC_SUBJECT}
        return [
            (n, generic[n.lower()]) if n.lower() in generic else (n, v)
            for n, v in headers
            if n.lower() in generic or n.lower() not in CALLER_FIELDS
        ]
    if rcpt.private_subject:
        return [(n, GENERIC_SUBJECT if n == "Subject" else v) for n, v in headers]
    return list(headers)


def _plain(value: object) -> str:
    """A header value as text, the way it reads after decoding (for HP-Outer)."""
    if isinstance(value, datetime):
        return format_datetime(value)
    return str(value)
