"""Fixtures for the SMTP ingress: a stack with ``smtp_ingress`` configured and PBX-style e-mails."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import stack  # noqa: F401  (re-exported fixture)
from tests.e2e.harness import Stack
from tests.fixtures.twilio import make_wav
from vm2mail.devstack.dovecot import DevDovecot

SMS_FROM = "+15550001000"
PBX_USER, PBX_PASSWORD = "pbx", "pbx-secret-0123"
DOMAIN = "vm.example.com"  # the fixtures' mail_domain


@pytest.fixture
def smtp_stack(stack: Callable[..., Stack], dovecot: DevDovecot) -> Callable[..., Stack]:  # noqa: F811
    """``smtp_stack(allowed_networks=[...], **smtp_ingress keys)``: mailbox 201 (encrypted) behind SMTP.

    STARTTLS uses the session Dovecot's certificate (issued for 127.0.0.1 by ``dovecot.ca_file``).
    """

    def factory(boxes: dict[str, dict[str, Any]] | None = None, **ingress: Any) -> Stack:
        tls = dovecot.root / "tls"
        settings: dict[str, Any] = {
            "listen": "127.0.0.1:0",
            "hostname": "mx.vm.example.com",
            "tls_cert": str(tls / "server.pem"),
            "tls_key": str(tls / "server.key"),
            "domains": [DOMAIN],
            "users": {PBX_USER: PBX_PASSWORD},
            "allowed_networks": ["127.0.0.0/8"],
            "max_message_bytes": 5_000_000,
        }
        settings.update(ingress)
        built = stack(boxes=boxes or {"201": {"encrypted": True, "aliases": ["anna"]}}, smtp_ingress=settings)
        # The stack factory sets twilio.api_base_url itself; the SMS sender is added to the loaded config.
        built.config = replace(built.config, twilio=replace(built.config.twilio, sms_from=SMS_FROM))
        return built

    return factory


def wav_bytes(seconds: float = 3.0) -> bytes:
    """8 kHz 16-bit mono PCM, as Asterisk's ``wav`` format writes it."""
    return make_wav(seconds)


def convert(tmp: Path, wav: bytes, suffix: str, *args: str) -> bytes:
    """Re-encode ``wav`` with ffmpeg (``*args`` are output options) and return the file's bytes."""
    src, dst = tmp / "in.wav", tmp / f"out{suffix}"
    src.write_bytes(wav)
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), *args, str(dst)],
        check=True,
        capture_output=True,
    )
    return dst.read_bytes()


def gsm_wav(tmp: Path, wav: bytes) -> bytes:
    """GSM 6.10 in WAV (format 0x31), what Asterisk's ``wav49`` writes, made with sox."""
    src, dst = tmp / "pcm.wav", tmp / "msg0000.WAV"
    src.write_bytes(wav)
    subprocess.run(["sox", str(src), "-r", "8000", "-c", "1", "-e", "gsm-full-rate", str(dst)], check=True)
    return dst.read_bytes()


def asterisk_email(
    audio: bytes,
    *,
    to: str = f"201@{DOMAIN}",
    caller: str | None = "+4930123456",
    caller_name: str | None = "Jörg Müller",
    filename: str = "msg0000.wav",
    content_type: str = "audio/x-wav",
    message_id: str = "<Asterisk-1-1763889342-201-4242@pbx.example.com>",
) -> bytes:
    """An app_voicemail e-mail as Asterisk's sendmail hands it over: ISO-8859-1 8bit body, base64 audio."""
    cid = f'"{caller_name}" <{caller}>' if caller_name else (caller or "an unknown caller")
    headers = [
        "Date: Mon, 23 Nov 2026 10:15:42 +0100",
        'From: "Asterisk PBX" <asterisk@pbx.example.com>',
        f'To: "Anna Schmidt" <{to}>',
        "Subject: [PBX]: New message 1 in mailbox 201",
        f"Message-ID: {message_id}",
        *([f"X-Asterisk-CallerID: {caller}"] if caller else []),
        *([f"X-Asterisk-CallerIDName: {caller_name}"] if caller_name else []),
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="----voicemail_1420142"',
    ]
    body = (
        "Dear Anna Schmidt:\r\n\r\n\tjust wanted to let you know you were just left a 0:03 long message "
        f"(number 1)\r\nin mailbox 201 from {cid}, on Monday, November 23, 2026 at 10:15:42 AM so you "
        "might\r\nwant to check it when you get a chance.  Thanks!\r\n\r\n\t\t\t\t--Asterisk\r\n"
    )
    encoded = base64.encodebytes(audio).replace(b"\n", b"\r\n")
    parts = [
        "\r\n".join(headers).encode("latin-1"),
        b"\r\n\r\nThis is a multi-part message in MIME format.\r\n\r\n------voicemail_1420142\r\n",
        b"Content-Type: text/plain; charset=ISO-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        body.encode("latin-1"),
        b"\r\n------voicemail_1420142\r\n",
        f'Content-Type: {content_type}; name="{filename}"\r\n'.encode(),
        b"Content-Transfer-Encoding: base64\r\nContent-Description: Voicemail sound attachment.\r\n",
        f'Content-Disposition: attachment; filename="{filename}"\r\n\r\n'.encode(),
        encoded,
        b"\r\n------voicemail_1420142--\r\n",
    ]
    return b"".join(parts)


def generic_email(
    attachments: list[tuple[bytes, str, str]],
    *,
    to: str = f"201@{DOMAIN}",
    subject: str = "Voicemail from +4930999888 (0:03)",
    text: str = "You have a new voicemail.",
    message_id: str = "<generic-1@pbx.example.com>",
) -> bytes:
    """Any PBX's e-mail: a text part plus (filename, maintype/subtype, data) attachments."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "3CX <pbx@pbx.example.com>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Mon, 23 Nov 2026 11:00:00 +0000"
    msg["Message-ID"] = message_id
    msg.set_content(text)
    for data, name, mime in attachments:
        maintype, subtype = mime.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


async def wait_state(spool: Path, job_id: str, timeout: float = 60.0) -> str:
    """Wait until the job is in done/ or failed/; its state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for state in ("done", "failed"):
            if (spool / state / f"{job_id}.json").exists():
                return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} not finished in {timeout}s")
