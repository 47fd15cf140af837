"""Webhook authentication: only POSTs Twilio signed over the public URL and every parameter get through."""

from __future__ import annotations

from pathlib import Path

from multidict import MultiDict

from tests.fixtures.twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_URL,
    call_params,
    make_telephony_config,
    run,
    running_gateway,
)
from vm2mail.errors import SignatureError
from vm2mail.telephony.signature import SIGNATURE_HEADER, sign, verify, webhook_url

RECORDING = {
    "AccountSid": ACCOUNT_SID,
    "CallSid": "CA" + "cd" * 16,
    "RecordingSid": "RE" + "ef" * 16,
    "RecordingUrl": "http://127.0.0.1:9/2010-04-01/Accounts/AC/Recordings/RE",
    "RecordingStatus": "completed",
    "RecordingDuration": "7",
    "RecordingChannels": "1",
    "RecordingStartTime": "Mon, 23 Nov 2026 10:00:00 +0000",
    "RecordingSource": "RecordVerb",
    "ErrorCode": "0",
}
RECORDING_PATH = "/twilio/recording?mb=201&from=%2B4917055501&to=%2B4930555201&name="


def test_verify_accepts_twilio_signature_and_rejects_tampering() -> None:
    params: MultiDict[str] = MultiDict([("To", "+4930555201"), ("Extra", "a"), ("Extra", "b")])
    url = webhook_url(PUBLIC_URL + "/", "/twilio/voice?x=1")
    assert url == "https://vm.example.test/twilio/voice?x=1"
    good = sign(AUTH_TOKEN, url, params)
    verify(AUTH_TOKEN, url, params, good)
    tampered = params.copy()
    tampered.add("Extra", "c")  # a repeated key is signed too
    for bad_params, bad_sig, bad_url in (
        (tampered, good, url),
        (params, None, url),
        (params, good, url.replace("x=1", "x=2")),
        (params, sign("other-token", url, params), url),
    ):
        try:
            verify(AUTH_TOKEN, bad_url, bad_params, bad_sig)
        except SignatureError:
            continue
        raise AssertionError(f"accepted {bad_url} {bad_sig}")


def test_unsigned_wrong_and_misaddressed_requests_are_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_gateway(make_telephony_config(tmp_path)) as gw:
            attempts = {
                "unsigned": await gw.post(RECORDING_PATH, RECORDING, unsigned=True),
                "wrong token": await gw.post(RECORDING_PATH, RECORDING, token="not-the-token"),
                "garbage": await gw.post(RECORDING_PATH, RECORDING, signature="AAAA"),
                # Signed for the socket address, not the public URL: what a naive Host-based check accepts.
                "other url": await gw.post(RECORDING_PATH, RECORDING, signed_url=gw.url + RECORDING_PATH),
                "other query": await gw.post(
                    RECORDING_PATH, RECORDING, signed_url=PUBLIC_URL + RECORDING_PATH.replace("201", "202")
                ),
            }
            for what, (status, body) in attempts.items():
                assert status == 403, (what, status, body)
                assert AUTH_TOKEN not in body
            # A parameter added after signing breaks the signature.
            signature = sign(AUTH_TOKEN, PUBLIC_URL + RECORDING_PATH, RECORDING)
            tampered = {**RECORDING, "RecordingDuration": "8"}
            status, _ = await gw.post(RECORDING_PATH, tampered, signature=signature)
            assert status == 403
            assert gw.jobs() == []
            # The same request, properly signed, is accepted: the refusals above were about the signature.
            assert (await gw.post(RECORDING_PATH, RECORDING))[0] == 204
            assert len(gw.jobs()) == 1

    run(scenario())


def test_non_form_body_is_400_and_wrong_account_is_403(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_gateway(make_telephony_config(tmp_path)) as gw:
            # Signed (over no form parameters) but not a form: a bad request, not a forgery.
            signature = sign(AUTH_TOKEN, PUBLIC_URL + "/twilio/voice", {})
            async with gw.session.post(
                gw.url + "/twilio/voice", json={"To": "+4930555201"}, headers={SIGNATURE_HEADER: signature}
            ) as response:
                assert response.status == 400
            params = call_params("+4930555201", AccountSid="AC" + "9" * 32)
            status, _ = await gw.post("/twilio/voice", params)
            assert status == 403
            status, body = await gw.post("/twilio/voice", call_params("+4930555201"))
            assert status == 200, body

    run(scenario())


def test_signature_covers_the_query_byte_for_byte(tmp_path: Path) -> None:
    """Twilio signs the callback URL exactly as the TwiML wrote it, percent-escapes included."""

    async def scenario() -> None:
        async with running_gateway(make_telephony_config(tmp_path)) as gw:
            # urlencode writes "/" as %2F and "ü" as %C3%BC; a normalising URL parser would undo the first.
            path = "/twilio/recording?mb=201&from=%2B4917055501&to=%2B4930555201&name=AC%2FDC+J%C3%BCrgen"
            status, body = await gw.post(path, RECORDING)
            assert status == 204, body
            (job,) = gw.jobs()
            assert job.call.caller_name == "AC/DC Jürgen"

    run(scenario())
