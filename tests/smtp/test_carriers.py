"""PBX and carrier voicemails (national numbers, stripped names, German dates) read and delivered."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import mutagen.id3
import pytest

from tests.e2e.harness import Stack, audio_part, gateway_up, parse, running
from tests.smtp.conftest import DOMAIN, wait_state, wav_bytes
from tests.smtp.test_ingress import send, voicemails
from vm2mail.smtp import pbx
from vm2mail.smtp.handler import job_id_for

NOW = datetime(2026, 12, 5, 15, 0, tzinfo=UTC)


def pbx_email(
    *,
    to: str,
    message_id: str,
    caller: str | None,
    header_name: str | None,
    body_name: str | None,
    date: str = "Sat, 05 Dec 2026 14:03:00 +0100",
    charset: str = "ISO-8859-1",
    body_date: str = "on Saturday, December 05, 2026 at 02:03:00 PM",
) -> bytes:
    """An app_voicemail e-mail: the caller ID in headers (non-ASCII stripped, as Asterisk does) and the
    full name in the 8-bit body, written in ``charset``."""
    cid = f'"{body_name}" <{caller}>' if body_name else (caller or "an unknown caller")
    headers = [
        f"Date: {date}",
        'From: "Asterisk PBX" <asterisk@pbx.example.com>',
        f"To: <{to}>",
        "Subject: [PBX]: New message 1 in mailbox 201",
        f"Message-ID: {message_id}",
        *([f"X-Asterisk-CallerID: {caller}"] if caller else []),
        *([f"X-Asterisk-CallerIDName: {header_name}"] if header_name else []),
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="----voicemail_77"',
    ]
    body = (
        "Dear Anna:\r\n\r\n\tjust wanted to let you know you were just left a 0:03 long message "
        f"(number 1)\r\nin mailbox 201 from {cid}, {body_date} so you might\r\n"
        "want to check it when you get a chance.  Thanks!\r\n"
    )
    audio = base64.encodebytes(wav_bytes(3.0)).replace(b"\n", b"\r\n")
    return b"".join(
        [
            "\r\n".join(headers).encode("ascii"),
            b"\r\n\r\n------voicemail_77\r\n",
            f"Content-Type: text/plain; charset={charset}\r\n".encode(),
            b"Content-Transfer-Encoding: 8bit\r\n\r\n",
            body.encode(charset),
            b"\r\n------voicemail_77\r\n",
            b'Content-Type: audio/x-wav; name="msg0000.wav"\r\nContent-Transfer-Encoding: base64\r\n',
            b'Content-Disposition: attachment; filename="msg0000.wav"\r\n\r\n',
            audio,
            b"\r\n------voicemail_77--\r\n",
        ]
    )


# -- reading, unit level ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw_number", "country", "expected"),
    [
        ("03012345678", "DE", "+493012345678"),  # German national format
        ("004930123456", "DE", "+4930123456"),  # international prefix 00
        ("4930123456", "DE", "+4930123456"),  # "+" lost by the carrier
        ("+49 (0)30 123456", "DE", "+4930123456"),
        ("01 5123456", "AT", "+4315123456"),  # Vienna, national
        ("0043 1 5123456", "DE", "+4315123456"),
        ("0441234567", "CH", "+41441234567"),  # Zurich, national
        ("2025550123", "US", "+12025550123"),  # US national, 10 digits
        ("1 202 555 0123", "US", "+12025550123"),
    ],
)
def test_national_and_international_numbers_become_e164(raw_number: str, country: str, expected: str) -> None:
    raw = pbx_email(
        to=f"201@{DOMAIN}", message_id="<x@pbx>", caller=raw_number, header_name=None, body_name=None
    )
    vm = pbx.parse(pbx.parse_message(raw), None, now=NOW, country=country)
    assert (vm.caller, vm.extension) == (expected, None)


def test_extension_is_an_extension_and_withheld_is_nobody() -> None:
    raw = pbx_email(to="x@y", message_id="<x@pbx>", caller="22", header_name="Max", body_name="Max")
    vm = pbx.parse(pbx.parse_message(raw), None, now=NOW, country="DE")
    assert (vm.caller, vm.extension, vm.caller_name) == (None, "22", "Max")
    raw = pbx_email(
        to="x@y", message_id="<y@pbx>", caller="anonymous", header_name="Anonymous", body_name=None
    )
    vm = pbx.parse(pbx.parse_message(raw), None, now=NOW, country="DE")
    assert (vm.caller, vm.extension, vm.caller_name) == (None, None, None)  # not "Anonymous (anonymous)"


@pytest.mark.parametrize("charset", ["ISO-8859-1", "UTF-8"])
def test_name_stripped_by_asterisk_is_taken_whole_from_the_body(charset: str) -> None:
    raw = pbx_email(
        to="x@y", message_id="<x@pbx>", caller="+4930123456", header_name="Jrg Mller",
        body_name="Jörg Müller", charset=charset,
    )  # fmt: skip
    vm = pbx.parse(pbx.parse_message(raw), None, now=NOW)
    assert vm.caller_name == "Jörg Müller"
    # A header name that differs from the body's (not a stripped copy) is the PBX's word and wins.
    raw = pbx_email(
        to="x@y", message_id="<x@pbx>", caller="+4930123456", header_name="Reception", body_name="Max"
    )
    assert pbx.parse(pbx.parse_message(raw), None, now=NOW).caller_name == "Reception"


def test_german_asterisk_dates_in_header_and_body() -> None:
    raw = pbx_email(
        to="x@y", message_id="<x@pbx>", caller=None, header_name=None, body_name=None,
        date="Sa, 05 Dez 2026 14:03:00 +0100",
    )  # fmt: skip
    vm = pbx.parse(pbx.parse_message(raw), None, now=NOW)
    assert vm.started == datetime(2026, 12, 5, 13, 3, tzinfo=UTC)
    # The header unreadable: the body's local time, in the mailbox's zone.
    raw = pbx_email(
        to="x@y", message_id="<x@pbx>", caller=None, header_name=None, body_name=None,
        date="gestern", body_date="am Samstag, 05. Dezember 2026 um 14:03:00",
    )  # fmt: skip
    vm = pbx.parse(pbx.parse_message(raw), None, now=NOW, tz=ZoneInfo("Europe/Berlin"))
    assert vm.started == datetime(2026, 12, 5, 13, 3, tzinfo=UTC)
    raw = pbx_email(to="x@y", message_id="<x@pbx>", caller=None, header_name=None, body_name=None, date="")
    vm = pbx.parse(pbx.parse_message(raw), None, now=NOW, tz=ZoneInfo("America/New_York"))
    assert vm.started == datetime(2026, 12, 5, 19, 3, tzinfo=UTC)  # 02:03 PM EST


# -- delivered through the real pipeline into Dovecot ----------------------------------------------------
@dataclass(frozen=True)
class Case:
    box: str
    caller: str | None
    header_name: str | None
    body_name: str | None
    number: str | None  # X-Vm2mail-Caller
    shown: str  # the From display name
    in_body: str  # how the number reads in the text
    date: str = "Sa, 05 Dez 2026 14:03:00 +0100"


CASES = [
    # A German PBX (locale=de_DE) with a German user: national number, name stripped in the header.
    Case("201", "03012345678", "Jrg Mller", "Jörg Müller", "+493012345678", "Jörg Müller", "030 12345678"),
    # An Austrian mobile calling the German mailbox: shown internationally.
    Case("201", "004369912345678", None, None, "+4369912345678", "+43 699 12345678", "+43 699 12345678"),
    Case("201", "4930123456", None, None, "+4930123456", "030 123456", "030 123456"),
    Case("202", "01 5123456", "Ines", "Ines", "+4315123456", "Ines", "01 5123456"),
    Case("203", "0441234567", None, None, "+41441234567", "044 123 45 67", "044 123 45 67"),
    Case("204", "2025550123", None, None, "+12025550123", "(202) 555-0123", "(202) 555-0123",
         date="Sat, 05 Dec 2026 08:03:00 -0500"),
]  # fmt: skip
BOXES: dict[str, dict[str, Any]] = {
    "201": {"country": "DE", "language": "de-DE", "timezone": "Europe/Berlin"},
    "202": {"country": "AT", "language": "de-DE", "timezone": "Europe/Vienna"},
    "203": {"country": "CH", "language": "de-DE", "timezone": "Europe/Zurich"},
    "204": {"country": "US", "language": "en-US", "timezone": "America/New_York"},
}


def id3(data: bytes) -> Any:
    return mutagen.id3.ID3(io.BytesIO(data))


def test_carrier_numbers_names_and_dates_delivered(smtp_stack: Callable[..., Stack], tmp_path: Path) -> None:
    stack = smtp_stack(boxes=BOXES)
    withheld = pbx_email(
        to=f"201@{DOMAIN}", message_id="<withheld@pbx>", caller="anonymous", header_name="Anonymous",
        body_name=None, date="Sa, 05 Dez 2026 14:03:00 +0100",
    )  # fmt: skip

    async def scenario() -> None:
        async with gateway_up(stack.config) as gateway:
            for i, case in enumerate(CASES):
                raw = pbx_email(
                    to=f"{case.box}@{DOMAIN}", message_id=f"<case-{i}@pbx>", caller=case.caller,
                    header_name=case.header_name, body_name=case.body_name, date=case.date,
                )  # fmt: skip
                result = await send(gateway.smtp_port, raw, [f"{case.box}@{DOMAIN}"])
                assert result.data is not None and result.data[0] == 250, result.data
                assert await wait_state(stack.spool, job_id_for(f"<case-{i}@pbx>", case.box)) == "done"
            await send(gateway.smtp_port, withheld, [f"201@{DOMAIN}"])
            assert await wait_state(stack.spool, job_id_for("<withheld@pbx>", "201")) == "done"

    asyncio.run(scenario())
    by_box: dict[str, list[Any]] = {box: [parse(m.raw) for m in voicemails(stack, box)] for box in BOXES}
    for case in CASES:
        [msg] = [m for m in by_box[case.box] if m["X-Vm2mail-Caller"] == case.number]
        assert msg["From"].addresses[0].display_name == case.shown, case
        assert parsedate_to_datetime(msg["Date"]) == datetime(2026, 12, 5, 13, 3, tzinfo=UTC), case
        assert msg["Reply-To"].startswith("reply+"), case  # an SMS reply reaches the caller
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert f"tel:{case.number}" in text and f'href="tel:{case.number}"' in html, case
        assert case.in_body in text, (case, text)
        tags = id3(audio_part(msg))
        assert tags.getall("TXXX:caller")[0].text == [case.number], case
        assert tags["TPE1"].text == [case.shown], case
        assert str(tags["TDRC"].text[0]).startswith("2026-12-05 "), case  # the mailbox's local time
        recorded = datetime.fromisoformat(tags.getall("TXXX:recorded")[0].text[0])
        assert recorded == datetime(2026, 12, 5, 13, 3, tzinfo=UTC) and recorded.utcoffset(), case
    german = next(m for m in by_box["201"] if m["X-Vm2mail-Caller"] == "+493012345678")
    tags = id3(audio_part(german))
    assert tags["TIT2"].text == ["Sprachnachricht von Jörg Müller"]
    assert str(tags["TDRC"].text[0]) == "2026-12-05 14:03:00"
    assert "05.12.2026 14:03 CET" in tags.getall("COMM")[0].text[0]
    american = by_box["204"][0]
    assert str(id3(audio_part(american))["TDRC"].text[0]) == "2026-12-05 08:03:00"
    [anonymous] = [m for m in by_box["201"] if m["X-Vm2mail-Caller"] == "anonymous"]
    assert anonymous["From"].addresses[0].display_name == "Rufnummer unterdrückt"
    assert anonymous["Reply-To"] is None
    assert "tel:" not in anonymous.get_body(("plain",)).get_content()
    assert "anonymous" not in anonymous["Subject"].lower()


TWILIO_CALLERS = [  # what Twilio sends in From (always E.164), and how a German user reads it
    ("+4930123456", "030 123456"),
    ("+4315123456", "+43 1 5123456"),
    ("+41441234567", "+41 44 123 45 67"),
    ("+12025550123", "+1 202-555-0123"),
]


def test_twilio_callers_from_four_countries_and_a_withheld_one(smtp_stack: Callable[..., Stack]) -> None:
    stack = smtp_stack(boxes={"201": {"country": "DE", "language": "de-DE", "forward_to": "+4917012345678"}})

    async def scenario() -> None:
        async with running(stack) as gateway:
            for caller in [*(c for c, _ in TWILIO_CALLERS), None]:
                # A withheld caller's CNAM reads "Anonymous": a word, not a name.
                trace = await stack.call(gateway, caller=caller, caller_name=None if caller else "Anonymous")
                assert trace.recording is not None
                assert await stack.wait_job(trace.recording.sid) == "done"

    asyncio.run(scenario())
    delivered = [parse(m.raw) for m in voicemails(stack, "201")]
    assert len(delivered) == len(TWILIO_CALLERS) + 1
    for number, shown in TWILIO_CALLERS:
        [msg] = [m for m in delivered if m["X-Vm2mail-Caller"] == number]
        assert msg["From"].addresses[0].display_name == shown
        assert msg["Reply-To"].startswith("reply+")
        text = msg.get_body(("plain",)).get_content()
        assert f"Rückruf:   tel:{number}" in text
        assert id3(audio_part(msg)).getall("TXXX:caller")[0].text == [number]
    [withheld] = [m for m in delivered if m["X-Vm2mail-Caller"] == "anonymous"]
    assert withheld["From"].addresses[0].display_name == "Rufnummer unterdrückt"
    assert withheld["X-Vm2mail-Caller-Name"] is None
    assert withheld["Subject"].startswith("Sprachnachricht von Rufnummer unterdrückt")
    assert withheld["Reply-To"] is None and "tel:" not in withheld.get_body(("plain",)).get_content()
    assert id3(audio_part(withheld))["TPE1"].text == ["Rufnummer unterdrückt"]
