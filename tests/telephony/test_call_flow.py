"""TwiML the voice, dial-done and record-done webhooks answer with, parsed as Twilio would."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree as ET

import pytest

from tests.fixtures.twilio import (
    PUBLIC_URL,
    Gateway,
    call_params,
    make_telephony_config,
    parse_twiml,
    run,
    running_gateway,
)
from vm2mail.jobs.jobs import caller_number

ANNA, BERND, CARLA = "+4930555201", "+4930555202", "+4930555203"


async def twiml(gw: Gateway, path: str, params: dict[str, str]) -> ET.Element:
    status, body = await gw.post(path, params)
    assert status == 200, body
    return parse_twiml(body)


def callback_query(record: ET.Element) -> dict[str, list[str]]:
    url = record.get("recordingStatusCallback") or ""
    assert url.startswith(PUBLIC_URL + "/twilio/recording?"), url
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def test_voicemail_without_forward(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_gateway(make_telephony_config(tmp_path)) as gw:
            params = call_params(ANNA, CallerName="Jürgen Groß & Söhne")
            root = await twiml(gw, "/twilio/voice", params)
            assert [v.tag for v in root] == ["Say", "Record", "Say", "Hangup"]
            greeting, record, goodbye, _ = root
            assert greeting.get("language") == "en-US"
            assert greeting.text == (
                "Anna Schmidt is not available. Please leave a message after the tone. "
                "Press the pound key or hang up when you are done."
            )
            assert record.attrib == {
                "action": f"{PUBLIC_URL}/twilio/record-done?mb=201&attempt=1",
                "method": "POST",
                "maxLength": "300",
                "playBeep": "true",
                "timeout": "5",
                "finishOnKey": "#",
                "trim": "trim-silence",
                "recordingStatusCallback": record.get("recordingStatusCallback"),
                "recordingStatusCallbackEvent": "completed absent",
                "recordingStatusCallbackMethod": "POST",
            }
            assert callback_query(record) == {
                "mb": ["201"],
                "from": ["+4917055501"],
                "to": [ANNA],
                "name": ["Jürgen Groß & Söhne"],
            }
            assert goodbye.get("language") == "en-US" and "Goodbye" in (goodbye.text or "")

    run(scenario())


def test_forward_rings_first_then_dial_done_decides(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_gateway(make_telephony_config(tmp_path)) as gw:
            root = await twiml(gw, "/twilio/voice", call_params(CARLA))
            assert [v.tag for v in root] == ["Dial"]
            dial = root[0]
            assert dial.get("timeout") == "15"
            assert dial.get("action") == f"{PUBLIC_URL}/twilio/dial-done?mb=203"
            assert dial.get("callerId") == "+4917055501"
            assert dial.get("answerOnBridge") == "true"
            assert [(n.tag, n.text) for n in dial] == [("Number", "+4917000203")]

            # A withheld caller cannot be presented: the called (Twilio) number is used instead.
            root = await twiml(gw, "/twilio/voice", call_params(CARLA, caller="anonymous"))
            assert root[0].get("callerId") == CARLA

            done = "/twilio/dial-done?mb=203"
            for status in ("completed", "answered"):
                root = await twiml(
                    gw, done, call_params(CARLA, DialCallStatus=status, CallStatus="in-progress")
                )
                assert [v.tag for v in root] == ["Hangup"], status
            for status in ("no-answer", "busy", "failed", "canceled"):
                root = await twiml(
                    gw, done, call_params(CARLA, DialCallStatus=status, CallStatus="in-progress")
                )
                assert [v.tag for v in root] == ["Say", "Record", "Say", "Hangup"], status
                assert "Carla Forward is not available" in (root[0].text or "")
                assert callback_query(root[1])["mb"] == ["203"]

    run(scenario())


def test_german_mailbox_speaks_german(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_gateway(make_telephony_config(tmp_path)) as gw:
            root = await twiml(gw, "/twilio/voice", call_params(BERND))
            greeting, record, goodbye, _ = root
            assert greeting.get("language") == "de-DE"
            assert greeting.text is not None
            assert greeting.text.startswith("Bernd Müller ist zurzeit nicht erreichbar.")
            assert record.get("maxLength") == "120"
            assert goodbye.get("language") == "de-DE" and "Auf Wiederhören" in (goodbye.text or "")

            done = "/twilio/record-done?mb=202&attempt=1"
            root = await twiml(gw, done, call_params(BERND, Digits="#", RecordingDuration="9"))
            assert [v.tag for v in root] == ["Say", "Hangup"]
            assert root[0].get("language") == "de-DE" and "Vielen Dank" in (root[0].text or "")

    run(scenario())


def test_unknown_number_is_politely_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_gateway(make_telephony_config(tmp_path)) as gw:
            root = await twiml(gw, "/twilio/voice", call_params("+4930555999"))
            assert [v.tag for v in root] == ["Say", "Hangup"]
            assert "not in service" in (root[0].text or "")
            assert gw.jobs() == []

    run(scenario())


@pytest.mark.parametrize(
    "raw",
    ["anonymous", "Anonymous", "+266696687", "+86282452253", "+7378742833", "+2562533", "", "12345", "+0123"],
)
def test_withheld_caller_still_leaves_a_message(tmp_path: Path, raw: str) -> None:
    assert caller_number(raw) is None

    async def scenario() -> None:
        async with running_gateway(make_telephony_config(tmp_path)) as gw:
            root = await twiml(gw, "/twilio/voice", call_params(ANNA, caller=raw))
            assert [v.tag for v in root] == ["Say", "Record", "Say", "Hangup"]
            assert callback_query(root[1])["from"] == [""]

    run(scenario())


def test_caller_number_keeps_e164() -> None:
    assert caller_number(" +4917055501 ") == "+4917055501"


def test_record_done(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_gateway(make_telephony_config(tmp_path)) as gw:
            done = "/twilio/record-done?mb=201&attempt=1"
            status, body = await gw.post(done, call_params(ANNA, Digits="hangup", RecordingDuration="12"))
            assert status == 200 and list(parse_twiml(body)) == []

            root = await twiml(gw, done, call_params(ANNA, Digits="#", RecordingDuration="12"))
            assert [v.tag for v in root] == ["Say", "Hangup"]
            assert (root[0].text or "").startswith("Thank you, your message for Anna Schmidt")

            # Too short (0 s < min 1 s) while the caller is still there: one more try, then thanks.
            root = await twiml(gw, done, call_params(ANNA, Digits="#", RecordingDuration="0"))
            assert [v.tag for v in root] == ["Say", "Record", "Say", "Hangup"]
            assert "too short" in (root[0].text or "")
            retry = root[1].get("action") or ""
            assert retry == f"{PUBLIC_URL}/twilio/record-done?mb=201&attempt=2"
            root = await twiml(
                gw, retry[len(PUBLIC_URL) :], call_params(ANNA, Digits="#", RecordingDuration="0")
            )
            assert [v.tag for v in root] == ["Say", "Hangup"]

    run(scenario())


def test_bad_input_is_400(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_gateway(make_telephony_config(tmp_path)) as gw:
            for params in (
                call_params(ANNA, CallSid="CA123"),
                {k: v for k, v in call_params(ANNA).items() if k != "To"},
            ):
                status, body = await gw.post("/twilio/voice", params)
                assert status == 400, body
            async with gw.session.get(gw.url + "/twilio/voice") as response:
                assert response.status == 405
            status, _ = await gw.post("/twilio/nowhere", call_params(ANNA))
            assert status == 404

    run(scenario())
