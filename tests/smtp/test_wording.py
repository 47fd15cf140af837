"""Words on the wire: the SMTP banner and size replies, audio errors, SMS cut at words, admin alerts."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Callable
from email.message import EmailMessage

from tests.e2e.harness import Stack, gateway_up
from tests.smtp.conftest import generic_email
from tests.smtp.test_ingress import send
from vm2mail.notify.texts import alert_texts
from vm2mail.smtp.replies import reply_text


def _session(port: int) -> tuple[tuple[int, bytes], tuple[int, bytes], tuple[int, bytes]]:
    with smtplib.SMTP(timeout=30) as client:
        banner = client.connect("127.0.0.1", port)
        client.ehlo("pbx.example.com")
        assert client.has_extn("size") and client.esmtp_features["size"] == "200000"
        too_big = client.mail("pbx@example.com", ["SIZE=5000000"])
        client.rset()
        fits = client.mail("pbx@example.com", ["SIZE=1000"])
        return banner, too_big, fits


def test_banner_size_reply_and_audio_error_text(smtp_stack: Callable[..., Stack]) -> None:
    stack = smtp_stack(max_message_bytes=200_000)
    broken = generic_email([(b"\xff\xfb" + b"\x00" * 4000, "vm.mp3", "audio/mpeg")], message_id="<bad@pbx>")

    async def scenario() -> tuple[tuple[tuple[int, bytes], ...], tuple[int, bytes] | None]:
        async with gateway_up(stack.config) as gateway:
            replies = await asyncio.to_thread(_session, gateway.smtp_port)
            bad = await send(gateway.smtp_port, broken)
            return replies, bad.data

    (banner, too_big, fits), bad = asyncio.run(scenario())
    assert banner == (220, b"mx.vm.example.com ESMTP")  # no software name, no version
    assert too_big == (552, b"5.3.4 Message size exceeds fixed maximum message size")  # RFC 3463
    assert fits[0] == 250
    assert bad is not None and bad[0] == 554
    text = bad[1].decode()
    assert "cannot be decoded: " in text and ": :" not in text and "/tmp" not in text, text
    assert text.split("cannot be decoded: ", 1)[1][:1].isalpha(), text


def test_sms_reply_over_the_limit_ends_at_a_word() -> None:
    msg = EmailMessage()
    msg.set_content("Thanks for calling, I will ring you back tomorrow morning after the meeting.")
    assert reply_text(msg, 40) == "Thanks for calling, I will ring you back"
    assert reply_text(msg, 41) == "Thanks for calling, I will ring you back"
    assert reply_text(msg, 200).endswith("meeting.")


def test_admin_alert_sms_names_vm2mail_once() -> None:
    texts = alert_texts("vm2mail: mailbox 201 locked after 5 wrong PINs", "", "en-US", None, 0)
    assert texts.sms == "vm2mail alert: mailbox 201 locked after 5 wrong PINs"
    assert texts.subject == "[vm2mail] mailbox 201 locked after 5 wrong PINs"
    german = alert_texts("vm2mail: Mailbox 201 gesperrt", "", "de-DE", None, 0)
    assert german.sms.count("vm2mail") == 1
