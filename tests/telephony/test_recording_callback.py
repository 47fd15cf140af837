"""The recordingStatusCallback: one durable job per recording, never an ack for what is not durable."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

from tests.fixtures.twilio import (
    ACCOUNT_SID,
    MAIL_DOMAIN,
    make_telephony_config,
    run,
    running_gateway,
)
from vm2mail.jobs.jobs import MISSED_CALL, VOICEMAIL
from vm2mail.jobs.spool import Spool

CALL_SID = "CA" + "12" * 16
RECORDING_SID = "RE" + "34" * 16
RECORDING_URL = f"http://127.0.0.1:9/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{RECORDING_SID}"


def path(mb: str = "201", caller: str = "+4917055501", name: str = "Jürgen Groß") -> str:
    query = {"mb": mb, "from": caller, "to": "+4930555201", "name": name}
    return "/twilio/recording?" + urlencode(query)


def callback(status: str = "completed", **overrides: str) -> dict[str, str]:
    params = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": CALL_SID,
        "RecordingSid": RECORDING_SID,
        "RecordingUrl": RECORDING_URL,
        "RecordingStatus": status,
        "RecordingDuration": "7" if status == "completed" else "0",
        "RecordingChannels": "1",
        "RecordingStartTime": "Mon, 23 Nov 2026 10:00:00 +0000",
        "RecordingSource": "RecordVerb",
        "ErrorCode": "0",
    }
    params.update(overrides)
    return params


def test_completed_recording_spools_exactly_one_job(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_gateway(make_telephony_config(tmp_path)) as gw:
            for _ in range(2):  # Twilio may repeat a callback; the second is a no-op, still 204
                status, body = await gw.post(path(), callback())
                assert (status, body) == (204, "")
            files = list((tmp_path / "spool" / "new").glob("*.json"))
            assert [f.name for f in files] == [f"twilio-{RECORDING_SID}.json"]
            raw = json.loads(files[0].read_text())
            assert raw["kind"] == VOICEMAIL
            assert raw["source"] == "twilio"
            assert raw["mailbox"] == "201"
            assert raw["message_id"] == f"<{RECORDING_SID}@{MAIL_DOMAIN}>"
            assert raw["call"] == {
                "call_sid": CALL_SID,
                "called": "+4930555201",
                "caller": "+4917055501",
                "caller_name": "Jürgen Groß",
                "extension": None,
            }
            assert raw["started_at"] == "2026-11-23T10:00:00+00:00"
            assert raw["recording_sid"] == RECORDING_SID
            assert raw["recording_url"] == RECORDING_URL
            assert raw["recording_duration"] == 7

    run(scenario())


def test_absent_recording_is_a_missed_call_if_the_mailbox_wants_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_gateway(make_telephony_config(tmp_path)) as gw:
            status, _ = await gw.post(path(caller="anonymous", name=""), callback("absent"))
            assert status == 204
            (job,) = gw.jobs()
            assert job.kind == MISSED_CALL
            assert job.id == f"twilio-{RECORDING_SID}"
            assert job.call.caller is None and job.call.caller_name is None
            assert job.recording_url is None and job.recording_duration == 0

            # Mailbox 204 has missed_call_email: false.
            quiet = callback("absent", RecordingSid="RE" + "56" * 16)
            status, _ = await gw.post(path(mb="204"), quiet)
            assert status == 204
            assert len(gw.jobs()) == 1

            # A failed recording is reported even there: the caller did try.
            failed = callback("failed", RecordingSid="RE" + "78" * 16, ErrorCode="16104")
            status, _ = await gw.post(path(mb="204"), failed)
            assert status == 204
            assert sorted((j.mailbox, j.kind) for j in gw.jobs()) == [
                ("201", MISSED_CALL),
                ("204", MISSED_CALL),
            ]

    run(scenario())


def test_bad_callbacks_are_refused_and_spool_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_gateway(make_telephony_config(tmp_path)) as gw:
            refused = [
                (403, path(), callback(AccountSid="AC" + "f" * 32)),
                (400, path(), callback(RecordingSid="RE1234")),
                (400, path(), callback(RecordingSid="CA" + "34" * 16)),
                (400, path(), callback(CallSid="CAxyz")),
                (400, path(mb="999"), callback()),
            ]
            for expected, target, params in refused:
                status, body = await gw.post(target, params)
                assert status == expected, (target, params, body)
            assert gw.jobs() == []
            # Unparseable start time and duration still deliver: the voicemail matters more.
            status, _ = await gw.post(path(), callback(RecordingStartTime="soon", RecordingDuration="-1"))
            assert status == 204
            (job,) = gw.jobs()
            assert job.recording_duration is None
            assert job.started.tzinfo is not None

    run(scenario())


def test_unwritable_spool_is_503_never_an_ack(tmp_path: Path) -> None:
    async def scenario() -> None:
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("a file where the spool should be")
        config = make_telephony_config(tmp_path)
        async with running_gateway(config, Spool(blocker)) as gw:
            status, body = await gw.post(path(), callback())
            assert status == 503, body

    run(scenario())
