"""Whole calls played by the simulator, the way Twilio drives them, against a gateway on loopback."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.fixtures.twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_URL,
    Gateway,
    make_telephony_config,
    make_wav,
    run,
    running_fake,
    running_gateway,
)
from vm2mail.devstack.fake_twilio import FakeTwilio, basic_auth_header
from vm2mail.devstack.simulator import CallTrace, SimulationError, simulate_call
from vm2mail.jobs.jobs import MISSED_CALL, VOICEMAIL

ANNA, BERND, CARLA = "+4930555201", "+4930555202", "+4930555203"


async def call(gw: Gateway, fake: FakeTwilio, called: str, **kwargs: object) -> CallTrace:
    options: dict[str, object] = {"caller": "+4917055501", "wav": make_wav(4.0), **kwargs}
    return await simulate_call(
        gateway_url=gw.url,
        public_url=PUBLIC_URL,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        fake=fake,
        called=called,
        **options,  # type: ignore[arg-type]
    )


def test_full_call_produces_one_job_and_a_fetchable_recording(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_fake() as fake:
            config = make_telephony_config(tmp_path, api_base_url=fake.base_url)
            async with running_gateway(config) as gw:
                trace = await call(gw, fake, ANNA, caller_name="Jürgen Groß & Söhne")
                paths = [url.split("?")[0].removeprefix(PUBLIC_URL) for url, _ in trace.steps]
                assert paths == ["/twilio/voice", "/twilio/record-done", "/twilio/recording"]
                assert trace.statuses == [200, 200, 204]
                assert trace.ended_by == "caller-hangup"
                assert trace.said[0][1].startswith("Anna Schmidt is not available")
                assert trace.recording is not None and trace.recording.sid in fake.recordings
                assert trace.recording.duration == 4

                (job,) = gw.jobs()
                assert job.kind == VOICEMAIL and job.mailbox == "201"
                assert job.id == f"twilio-{trace.recording.sid}"
                assert job.call.call_sid == trace.call_sid
                assert (job.call.caller, job.call.called, job.call.caller_name) == (
                    "+4917055501",
                    ANNA,
                    "Jürgen Groß & Söhne",
                )
                assert job.recording_duration == 4
                assert job.recording_url == fake.recording_url(trace.recording)
                assert job.started == trace.recording.start_time.replace(microsecond=0)

                # The URL the job carries serves the caller's audio, with the account's credentials.
                headers = {"Authorization": basic_auth_header(ACCOUNT_SID, AUTH_TOKEN)}
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(job.recording_url + ".wav", headers=headers) as r,
                ):
                    assert r.status == 200 and await r.read() == trace.recording.wav

    run(scenario())


@pytest.mark.parametrize(("outcome", "recorded"), [("no-answer", True), ("busy", True), ("completed", False)])
def test_forwarded_call(tmp_path: Path, outcome: str, recorded: bool) -> None:
    async def scenario() -> None:
        async with running_fake() as fake, running_gateway(make_telephony_config(tmp_path)) as gw:
            trace = await call(gw, fake, CARLA, dial_outcome=outcome)
            assert trace.steps[1][0] == f"{PUBLIC_URL}/twilio/dial-done?mb=203"
            assert (trace.recording is not None) == recorded
            assert len(gw.jobs()) == int(recorded)
            if not recorded:
                assert trace.ended_by == "dial-connected" and fake.recordings == {}

    run(scenario())


def test_withheld_caller_and_german_mailbox(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_fake() as fake, running_gateway(make_telephony_config(tmp_path)) as gw:
            trace = await call(gw, fake, BERND, caller=None, digits="#")
            assert trace.said[0][0] == "de-DE"
            assert trace.said[-1] == (
                "de-DE",
                "Vielen Dank, Ihre Nachricht für Bernd Müller wurde aufgezeichnet. Auf Wiederhören.",
            )
            assert trace.ended_by == "hangup-verb"
            (job,) = gw.jobs()
            assert job.mailbox == "202" and job.call.caller is None and job.call.caller_name is None

    run(scenario())


def test_silent_caller_and_hangup_during_greeting(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_fake() as fake, running_gateway(make_telephony_config(tmp_path)) as gw:
            trace = await call(gw, fake, ANNA, wav=None, recording_status="absent")
            # Old behaviour: no action on an empty recording; the fallback goodbye ends the call.
            assert trace.ended_by == "hangup-verb" and trace.said[-1][1].startswith("No message")
            (job,) = gw.jobs()
            assert job.kind == MISSED_CALL and job.recording_sid == trace.recording_sid

            trace = await call(gw, fake, ANNA, hangup_during_greeting=True)
            assert trace.ended_by == "caller-hangup" and len(trace.steps) == 1
            assert len(gw.jobs()) == 1  # no recording, no callback: nothing new

    run(scenario())


def test_simulator_reports_a_refusing_gateway(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_fake() as fake, running_gateway(make_telephony_config(tmp_path)) as gw:
            with pytest.raises(SimulationError, match="HTTP 403"):
                await simulate_call(
                    gateway_url=gw.url,
                    public_url="https://elsewhere.test",
                    account_sid=ACCOUNT_SID,
                    auth_token=AUTH_TOKEN,
                    fake=fake,
                    caller=None,
                    called=ANNA,
                    wav=None,
                )

    run(scenario())
