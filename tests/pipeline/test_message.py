"""pipeline.message: compose() output parsed back with the stdlib, plain and as PGP/MIME decrypted by gpg."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import re
import subprocess
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.gpg import GpgKeys
from vm2mail.audio.transcode import transcode_to_mp3
from vm2mail.config.model import Mailbox
from vm2mail.crypto.pgp import Encryptor
from vm2mail.devstack import keys
from vm2mail.errors import CryptoError
from vm2mail.jobs.jobs import MISSED_CALL, VOICEMAIL, CallInfo
from vm2mail.pipeline.message import Voicemail, compose

STARTED = datetime(2026, 11, 23, 9, 30, 15, tzinfo=UTC)  # 10:30 in Berlin, 04:30 in New York
UTF8_NAME = "Jürgen Müller 😀"


@pytest.fixture(scope="module")
def mp3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mp3") / "vm.mp3"
    src = Path("/work/shared/samples/en-callback-request.wav")
    return asyncio.run(transcode_to_mp3(src, out)).path


def mailbox(**overrides: Any) -> Mailbox:
    fields: dict[str, Any] = {
        "id": "201",
        "name": "Anna Schmidt",
        "email": "anna@example.org",
        "ring_seconds": 20,
        "max_message_seconds": 300,
        "min_message_seconds": 1,
        "folder": "Voicemail",
        "language": "en-US",
        "timezone": "Europe/Berlin",
        "missed_call_email": True,
        "private_subject": False,
    }
    fields.update(overrides)
    return Mailbox(**fields)


def voicemail(mp3: Path | None, **overrides: Any) -> Voicemail:
    anna = mailbox()
    fields: dict[str, Any] = {
        "kind": VOICEMAIL,
        "recipient": anna,
        "mailbox": anna,
        "message_id": "<RE0123abcd@vm.example.com>",
        "call": CallInfo(call_sid="CA42", called="+4930999000", caller="+4930123456", caller_name=UTF8_NAME),
        "started": STARTED,
        "duration": 83.4,
        "mail_domain": "vm.example.com",
        "mp3": mp3,
    }
    fields.update(overrides)
    return Voicemail(**fields)


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def assert_wire_clean(raw: bytes) -> None:
    """CRLF only, 7-bit, and no line over RFC 5322 §2.1.1's 998 octets."""
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert max(raw) < 128
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def structure(part: EmailMessage) -> Any:
    if part.is_multipart():
        return (part.get_content_type(), [structure(p) for p in part.iter_parts()])  # type: ignore[arg-type]
    return part.get_content_type()


def bodies(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


def ffprobe_codec(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "attachment.mp3"
    path.write_bytes(data)
    return subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_plain_voicemail_headers(mp3: Path) -> None:
    raw = compose(voicemail(mp3), templates_dir=None, encryptor=None)
    assert_wire_clean(raw)
    msg = parse(raw)
    assert msg["From"].addresses[0].display_name == UTF8_NAME
    assert msg["From"].addresses[0].addr_spec == "voicemail@vm.example.com"
    assert re.search(rb"^From: =\?utf-8\?", raw, re.M)  # RFC 2047 encoded-word, not raw UTF-8
    assert str(msg["To"]) == "Anna Schmidt <anna@example.org>"
    assert parsedate_to_datetime(msg["Date"]) == STARTED
    assert msg["Date"].endswith("+0100")  # the recipient's offset
    assert msg["Subject"] == f"Voicemail from {UTF8_NAME} (1:23)"
    assert msg["Message-ID"] == "<RE0123abcd@vm.example.com>"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Vm2mail-Kind"] == "voicemail"
    assert msg["X-Vm2mail-Caller"] == "+4930123456"
    assert msg["X-Vm2mail-Caller-Name"] == UTF8_NAME
    assert re.search(rb"^X-Vm2mail-Caller-Name: =\?utf-8\?", raw, re.M)
    assert msg["X-Vm2mail-Called"] == "+4930999000"
    assert msg["X-Vm2mail-Duration"] == "83"
    assert msg["X-Vm2mail-Mailbox"] == "201"
    assert msg["X-Vm2mail-Call-Id"] == "CA42"
    assert raw.count(b"MIME-Version") == 1


def test_plain_voicemail_body_and_attachment(mp3: Path, tmp_path: Path) -> None:
    msg = parse(compose(voicemail(mp3), templates_dir=None, encryptor=None))
    assert structure(msg) == (
        "multipart/mixed",
        [("multipart/alternative", ["text/plain", "text/html"]), "audio/mpeg"],
    )
    text, html = bodies(msg)
    for body in (text, html):
        # No mailbox country: numbers are shown in the international format, grouped.
        assert UTF8_NAME in body and "+49 30 123456" in body
        assert "2026-11-23 10:30 CET" in body
        assert "1:23" in body
        assert "+49 30 999000" in body and "Anna Schmidt" in body
    assert "tel:+4930123456" in text
    assert 'href="tel:+4930123456"' in html
    (attachment,) = msg.iter_attachments()
    assert isinstance(attachment, EmailMessage)
    assert attachment.get_filename() == "voicemail-2026-11-23-1030-+4930123456.mp3"
    assert attachment.get_content_disposition() == "attachment"
    data = attachment.get_content()
    assert data == mp3.read_bytes()
    assert ffprobe_codec(data, tmp_path) == "mp3"


def test_html_is_escaped_and_headers_cannot_be_injected(mp3: Path) -> None:
    call = CallInfo(
        call_sid="CA1",
        called="+4930999000",
        caller="+4930123456",
        caller_name='<script>alert("x")</script>\r\nBcc: evil@example.net',
    )
    raw = compose(voicemail(mp3, call=call), templates_dir=None, encryptor=None)
    msg = parse(raw)
    _, html = bodies(msg)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert msg["Bcc"] is None and b"\r\nBcc:" not in raw
    assert msg["X-Vm2mail-Caller-Name"] == '<script>alert("x")</script> Bcc: evil@example.net'


def test_withheld_caller(mp3: Path) -> None:
    call = CallInfo(call_sid="CA1", called="+4930999000")
    msg = parse(compose(voicemail(mp3, call=call), templates_dir=None, encryptor=None))
    assert str(msg["From"]) == "Withheld number <voicemail@vm.example.com>"
    assert msg["X-Vm2mail-Caller"] == "anonymous"
    assert msg["X-Vm2mail-Caller-Name"] is None
    assert msg["Subject"] == "Voicemail from Withheld number (1:23)"
    text, html = bodies(msg)
    assert "tel:" not in text and "tel:" not in html
    (attachment,) = msg.iter_attachments()
    assert attachment.get_filename() == "voicemail-2026-11-23-1030-anonymous.mp3"


def test_recipient_time_zone_and_language(mp3: Path) -> None:
    ny = mailbox(timezone="America/New_York")
    msg = parse(compose(voicemail(mp3, recipient=ny, mailbox=ny), templates_dir=None, encryptor=None))
    assert "2026-11-23 04:30 EST" in bodies(msg)[0]
    assert msg["Date"].endswith("-0500")
    de = mailbox(language="de-DE")
    msg = parse(compose(voicemail(mp3, recipient=de, mailbox=de), templates_dir=None, encryptor=None))
    assert msg["Subject"] == f"Sprachnachricht von {UTF8_NAME} (1:23)"
    text, html = bodies(msg)
    assert "23.11.2026 10:30 CET" in text and "Länge:" in text
    assert "zurückrufen" in html


def test_unknown_language_falls_back_to_english(mp3: Path) -> None:
    fr = mailbox(language="fr-FR")
    msg = parse(compose(voicemail(mp3, recipient=fr, mailbox=fr), templates_dir=None, encryptor=None))
    assert msg["Subject"].startswith("Voicemail from")


def test_group_copy(mp3: Path) -> None:
    sales = mailbox(id="300", name="Sales", email=None, members=("201", "202"))
    bob = mailbox(id="202", name="Bob Meyer", email=None)
    msg = parse(compose(voicemail(mp3, recipient=bob, mailbox=sales), templates_dir=None, encryptor=None))
    assert msg["Subject"] == f"Voicemail for Sales from {UTF8_NAME} (1:23)"
    assert str(msg["To"]) == "Bob Meyer <202@vm.example.com>"
    assert msg["X-Vm2mail-Mailbox"] == "300"
    text, _ = bodies(msg)
    assert "New voicemail for Sales" in text


def test_missed_call(mp3: Path) -> None:
    raw = compose(voicemail(None, kind=MISSED_CALL, duration=None), templates_dir=None, encryptor=None)
    assert_wire_clean(raw)
    msg = parse(raw)
    assert structure(msg) == ("multipart/mixed", [("multipart/alternative", ["text/plain", "text/html"])])
    assert msg["Subject"] == f"Missed call from {UTF8_NAME}"
    assert msg["X-Vm2mail-Kind"] == "missed-call"
    assert msg["X-Vm2mail-Duration"] == "0"
    assert "left no message" in bodies(msg)[0]


def test_template_override(mp3: Path, tmp_path: Path) -> None:
    override = tmp_path / "templates" / "email" / "en-US"
    override.mkdir(parents=True)
    (override / "voicemail.subject.j2").write_text("[VM] {{ caller }} → {{ mailbox_id }}\n")
    msg = parse(compose(voicemail(mp3), templates_dir=tmp_path / "templates", encryptor=None))
    assert msg["Subject"] == "[VM] +4930123456 → 201"
    assert "New voicemail" in bodies(msg)[0]  # the other templates still come from the shipped set


def test_naive_start_is_rejected(mp3: Path) -> None:
    with pytest.raises(ValueError, match="aware"):
        compose(voicemail(mp3, started=datetime(2026, 1, 1, 12, 0)), templates_dir=None, encryptor=None)


# --- PGP/MIME (RFC 3156) -------------------------------------------------------------------------


def encrypted_voicemail(mp3: Path, gpg_keys: GpgKeys, **recipient: Any) -> tuple[Voicemail, Any]:
    anna_key = gpg_keys("Anna")
    anna = mailbox(gpg_recipients=(anna_key.fingerprint,), **recipient)
    return voicemail(mp3, recipient=anna, mailbox=anna), anna_key


def test_encrypted_outer_structure(mp3: Path, gpg_keys: GpgKeys) -> None:
    vm, _ = encrypted_voicemail(mp3, gpg_keys)
    raw = compose(vm, templates_dir=None, encryptor=Encryptor(gpg_keys.home))
    assert_wire_clean(raw)
    outer = parse(raw)
    assert outer.get_content_type() == "multipart/encrypted"
    assert outer.get_param("protocol") == "application/pgp-encrypted"
    version, payload = outer.iter_parts()
    assert version.get_content_type() == "application/pgp-encrypted"
    assert version.get_payload().strip() == "Version: 1"
    assert payload.get_content_type() == "application/octet-stream"
    assert payload.get_param("name") == "encrypted.asc"
    assert payload.get_content_disposition() == "inline"
    assert payload.get("Content-Transfer-Encoding", "7bit") == "7bit"
    assert str(payload.get_payload()).startswith("-----BEGIN PGP MESSAGE-----")
    # The menu and watcher read only these, so they stay outside.
    assert outer["Message-ID"] == vm.message_id
    assert parsedate_to_datetime(outer["Date"]) == STARTED
    assert outer["From"].addresses[0].display_name == UTF8_NAME
    assert str(outer["To"]) == "Anna Schmidt <anna@example.org>"
    assert outer["Subject"] == f"Voicemail from {UTF8_NAME} (1:23)"
    assert outer["X-Vm2mail-Duration"] == "83" and outer["X-Vm2mail-Call-Id"] == "CA42"
    assert outer["MIME-Version"] == "1.0"
    assert b"tel:" not in raw and b"SUQz" not in raw  # no body text, no base64 ID3 header in the clear


def test_encrypted_inner_decrypts_to_the_voicemail(mp3: Path, gpg_keys: GpgKeys, tmp_path: Path) -> None:
    vm, anna_key = encrypted_voicemail(mp3, gpg_keys)
    outer = parse(compose(vm, templates_dir=None, encryptor=Encryptor(gpg_keys.home)))
    _, payload = outer.iter_parts()
    inner_raw = keys.decrypt(anna_key.secret_home, str(payload.get_payload()).encode())
    assert_wire_clean(inner_raw)  # RFC 3156 §3: canonical CRLF form
    inner = parse(inner_raw)
    assert structure(inner) == (
        "multipart/mixed",
        [("multipart/alternative", ["text/plain", "text/html"]), "audio/mpeg"],
    )
    assert inner.get_param("protected-headers") == "v1"
    assert inner.get_param("hp") == "cipher"
    assert inner["Subject"] == outer["Subject"]
    assert inner["From"].addresses[0].display_name == UTF8_NAME
    assert inner["Message-ID"] == vm.message_id
    assert parsedate_to_datetime(inner["Date"]) == STARTED
    assert f"Subject: Voicemail from {UTF8_NAME} (1:23)" in inner.get_all("HP-Outer", [])
    (attachment,) = inner.iter_attachments()
    assert isinstance(attachment, EmailMessage)
    assert attachment.get_content_type() == "audio/mpeg"
    assert attachment.get_content() == mp3.read_bytes()
    assert ffprobe_codec(attachment.get_content(), tmp_path) == "mp3"


def test_private_subject(mp3: Path, gpg_keys: GpgKeys) -> None:
    vm, anna_key = encrypted_voicemail(mp3, gpg_keys, private_subject=True)
    raw = compose(vm, templates_dir=None, encryptor=Encryptor(gpg_keys.home))
    outer = parse(raw)
    assert outer["Subject"] == "Voicemail"
    _, payload = outer.iter_parts()
    inner = parse(keys.decrypt(anna_key.secret_home, str(payload.get_payload()).encode()))
    assert inner["Subject"] == f"Voicemail from {UTF8_NAME} (1:23)"
    assert "Subject: Voicemail" in inner.get_all("HP-Outer", [])


def test_playback_key_can_decrypt_too(mp3: Path, gpg_keys: GpgKeys) -> None:
    vm, anna_key = encrypted_voicemail(mp3, gpg_keys)
    playback = gpg_keys("Gateway Playback")
    raw = compose(
        vm, templates_dir=None, encryptor=Encryptor(gpg_keys.home), extra_recipients=[playback.fingerprint]
    )
    _, payload = parse(raw).iter_parts()
    armored = str(payload.get_payload()).encode()
    assert keys.decrypt(anna_key.secret_home, armored) == keys.decrypt(playback.secret_home, armored)


def test_missed_call_encrypted(gpg_keys: GpgKeys) -> None:
    vm, anna_key = encrypted_voicemail(Path("/nonexistent"), gpg_keys)
    vm = dataclasses.replace(vm, kind=MISSED_CALL, duration=None, mp3=None)
    _, payload = parse(compose(vm, templates_dir=None, encryptor=Encryptor(gpg_keys.home))).iter_parts()
    inner = parse(keys.decrypt(anna_key.secret_home, str(payload.get_payload()).encode()))
    assert structure(inner) == ("multipart/mixed", [("multipart/alternative", ["text/plain", "text/html"])])


@pytest.mark.parametrize(
    "kind", [{"expired": True}, {"import_to_gateway": False}], ids=["expired", "unknown"]
)
def test_unusable_key_fails_the_copy(mp3: Path, gpg_keys: GpgKeys, kind: dict[str, bool]) -> None:
    bad = gpg_keys("Bad", **kind)
    anna = mailbox(gpg_recipients=(bad.fingerprint,))
    with pytest.raises(CryptoError) as caught:
        compose(
            voicemail(mp3, recipient=anna, mailbox=anna),
            templates_dir=None,
            encryptor=Encryptor(gpg_keys.home),
        )
    assert caught.value.temporary is False
    assert bad.fingerprint in str(caught.value)


def test_keys_without_encryptor_never_fall_back_to_plaintext(mp3: Path) -> None:
    anna = mailbox(gpg_recipients=("A" * 40,))
    with pytest.raises(CryptoError, match="no encryptor"):
        compose(voicemail(mp3, recipient=anna, mailbox=anna), templates_dir=None, encryptor=None)
