"""Admin alerts, the TLS relay, group mailboxes and German texts, against the stand-ins and a real sink."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.e2e.harness import Stack
from tests.fixtures.smtp import SmtpSink
from tests.notify.conftest import ANNA_MAIL, ANNA_PHONE, Clock, at, drop, notifier_up, voicemail

OPS_MAIL, OPS_PHONE = "ops@example.org", "+15550009100"


def test_admin_alert_reaches_mail_and_sms_once_per_identical_alert(
    notify_stack: Callable[..., Stack], smtp_sink: SmtpSink
) -> None:
    s = notify_stack(admin={"email": OPS_MAIL, "sms": OPS_PHONE})

    async def scenario() -> None:
        async with notifier_up(s, Clock(at(10, 0))) as [notifier]:
            for _ in range(3):
                await notifier.alert_admin("Mailbox 201 locked", "10 failed PIN logins in 30 minutes")
            notifier.alert_soon("Job failed", "job twilio-RE1 moved to failed/")
        # close() (in notifier_up) lets the background alert finish

    asyncio.run(scenario())
    assert [m["To"] for m in s.fake.messages] == [OPS_PHONE, OPS_PHONE]
    assert "Mailbox 201 locked" in s.fake.messages[0]["Body"]
    mails = smtp_sink.to(OPS_MAIL)
    assert [m.message["Subject"] for m in mails] == ["[vm2mail] Mailbox 201 locked", "[vm2mail] Job failed"]
    assert "10 failed PIN logins" in mails[0].message.get_content()
    assert mails[0].message["Auto-Submitted"] == "auto-generated"


def test_relay_with_starttls_and_auth(
    notify_stack: Callable[..., Stack], smtp_sink_tls: Callable[[], Any]
) -> None:
    with smtp_sink_tls() as sink:
        s = notify_stack({"201": {"notify": {"email": [ANNA_MAIL]}}}, relay=sink.relay_config("starttls"))
        drop(s, "201", voicemail(message_id="<tls-1@vm.example.com>", date=at(10, 0)), at(10, 0))

        async def scenario() -> None:
            async with notifier_up(s, Clock(at(10, 1))) as [notifier]:
                await notifier.scan()

        asyncio.run(scenario())
        [mail] = sink.messages
    assert mail.tls and mail.authenticated_as == "relay-user"
    assert mail.rcpt_tos == (ANNA_MAIL,)


def test_group_voicemail_tells_each_number_once(notify_stack: Callable[..., Stack]) -> None:
    group_phone, bernd_phone = "+15550009300", "+15550009202"
    s = notify_stack(
        {
            "201": {"notify": {"sms": [ANNA_PHONE]}},
            "202": {"notify": {"sms": [ANNA_PHONE, bernd_phone]}, "language": "de-DE"},
            "300": {
                "name": "Vertrieb",
                "members": ["201", "202"],
                "notify": {"sms": [group_phone, ANNA_PHONE]},
            },
        }
    )
    for box in ("201", "202"):
        raw = voicemail(message_id="<group-1@vm.example.com>", date=at(10, 0), mailbox="300")
        drop(s, box, raw, at(10, 0))

    async def scenario() -> None:
        async with notifier_up(s, Clock(at(10, 2))) as [notifier]:
            await notifier.scan()
            await notifier.scan()

    asyncio.run(scenario())
    sent = {m["To"]: m["Body"] for m in s.fake.messages}
    assert len(s.fake.messages) == 3
    assert set(sent) == {group_phone, ANNA_PHONE, bernd_phone}
    assert sent[group_phone].startswith("New voicemail for Vertrieb from Jürgen Müller")
    # Bernd's own number is told on his copy, in his language.
    assert sent[bernd_phone].startswith("Neue Sprachnachricht für Vertrieb von Jürgen Müller")
    assert "23.11.2026 10:00" in sent[bernd_phone]


def test_german_mail_notice(notify_stack: Callable[..., Stack], smtp_sink: SmtpSink) -> None:
    s = notify_stack({"201": {"notify": {"email": [ANNA_MAIL]}, "language": "de-DE"}})
    drop(s, "201", voicemail(message_id="<de-1@vm.example.com>", date=at(18, 45), duration=7), at(18, 45))

    async def scenario() -> None:
        async with notifier_up(s, Clock(at(18, 50))) as [notifier]:
            await notifier.scan()

    asyncio.run(scenario())
    [mail] = smtp_sink.messages
    assert mail.message["Subject"] == "Neue Sprachnachricht von Jürgen Müller (0:07)"
    body = mail.message.get_content()
    assert "Datum:   23.11.2026 18:45" in body and "Länge:   0:07" in body
