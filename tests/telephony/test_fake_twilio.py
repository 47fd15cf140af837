"""The Twilio stand-in: media with Basic auth, JSON resources, and the official REST client against it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from tests.fixtures.twilio import ACCOUNT_SID, AUTH_TOKEN, make_wav, run, running_fake
from vm2mail.devstack.fake_twilio import FakeTwilio, basic_auth_header

CALL = "CA" + "00" * 16


def rest_client(fake: FakeTwilio, **kwargs: Any) -> Client:
    client = Client(ACCOUNT_SID, AUTH_TOKEN, **kwargs)
    client.api.base_url = fake.base_url  # FIELD-NOTES: redirects the whole api.twilio.com domain
    return client


def test_media_needs_basic_auth_and_serves_the_wav() -> None:
    async def scenario() -> None:
        wav = make_wav(3.2)
        async with running_fake() as fake, aiohttp.ClientSession() as http:
            rec = fake.add_recording(wav, call_sid=CALL)
            assert rec.sid.startswith("RE") and len(rec.sid) == 34 and rec.duration == 3
            url = fake.recording_url(rec)
            auth = {"Authorization": basic_auth_header(ACCOUNT_SID, AUTH_TOKEN)}
            async with http.get(url + ".wav") as r:
                assert r.status == 401 and (await r.json())["code"] == 20003
            async with http.get(
                url + ".wav", headers={"Authorization": basic_auth_header(ACCOUNT_SID, "wrong")}
            ) as r:
                assert r.status == 401
            for suffix in ("", ".wav"):
                async with http.get(url + suffix, headers=auth) as r:
                    assert r.status == 200 and await r.read() == wav
            async with http.get(url + ".mp3", headers=auth) as r:
                assert r.status == 404  # documented: the fake does not transcode
            fake.fail_next(2, 503)
            for expected in (503, 503, 200):
                async with http.get(url + ".wav", headers=auth) as r:
                    assert r.status == expected
            assert [(f.extension, f.status) for f in fake.fetches] == [
                ("", 200),
                ("wav", 200),
                ("mp3", 404),
                ("wav", 503),
                ("wav", 503),
                ("wav", 200),
            ]
            async with http.get(url + ".json", headers=auth) as r:
                resource = await r.json()
            assert resource["sid"] == rec.sid and resource["call_sid"] == CALL
            assert resource["duration"] == "3" and resource["status"] == "completed"
            assert resource["date_created"].endswith("+0000")
            async with http.get(url.replace(rec.sid, "RE" + "9" * 32) + ".json", headers=auth) as r:
                assert r.status == 404 and (await r.json())["code"] == 20404

    run(scenario())


def test_sync_rest_client_deletes_lists_and_sends_sms() -> None:
    async def scenario() -> None:
        async with running_fake() as fake:
            old = fake.add_recording(make_wav(1), call_sid=CALL)
            old.date_created -= timedelta(days=3)
            recent = [fake.add_recording(make_wav(1), call_sid=CALL) for _ in range(3)]
            client = rest_client(fake)

            def blocking() -> None:  # the sync client uses requests: keep it off the event loop
                since = datetime.now(UTC) - timedelta(days=1)
                listed = client.recordings.list(date_created_after=since, page_size=2)
                assert sorted(r.sid for r in listed) == sorted(
                    r.sid for r in recent
                )  # followed next_page_uri
                fetched = client.recordings(old.sid).fetch()
                assert fetched.call_sid == CALL and fetched.duration == "1"
                assert client.recordings(old.sid).delete() is True
                with pytest.raises(TwilioRestException) as gone:
                    client.recordings(old.sid).delete()
                assert gone.value.status == 404 and gone.value.code == 20404
                message = client.messages.create(to="+4917055501", from_="+4930555200", body="New voicemail")
                assert message.sid.startswith("SM") and message.status == "queued"
                with pytest.raises(TwilioRestException) as invalid:
                    client.messages.create(to="0170 555", from_="+4930555200", body="x")
                assert invalid.value.code == 21211

            await asyncio.to_thread(blocking)
            assert fake.deleted == {old.sid} and old.sid not in fake.recordings
            assert fake.messages == [{"To": "+4917055501", "From": "+4930555200", "Body": "New voicemail"}]

    run(scenario())


# twilio's AsyncTwilioHttpClient passes aiohttp.BasicAuth as ``auth=``; aiohttp 3.14 deprecates both:
# it works, but warns twice per request (errors under filterwarnings=error), tolerated here only.
@pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning")
def test_async_rest_client_deletes_a_recording() -> None:
    async def scenario() -> None:
        async with running_fake() as fake:
            rec = fake.add_recording(make_wav(1), call_sid=CALL)
            http = AsyncTwilioHttpClient()  # owns an aiohttp session: create it inside the loop
            try:
                client = rest_client(fake, http_client=http)
                assert await client.recordings(rec.sid).delete_async() is True
                with pytest.raises(TwilioRestException) as gone:
                    await client.recordings(rec.sid).delete_async()
                assert gone.value.status == 404
            finally:
                await http.close()
            assert fake.deleted == {rec.sid}

    run(scenario())


def test_wrong_credentials_are_refused_by_the_rest_client() -> None:
    async def scenario() -> None:
        async with running_fake() as fake:
            rec = fake.add_recording(make_wav(1), call_sid=CALL)
            client = Client(ACCOUNT_SID, "wrong-token")
            client.api.base_url = fake.base_url

            def blocking() -> None:
                with pytest.raises(TwilioRestException) as denied:
                    client.recordings(rec.sid).delete()
                assert denied.value.status == 401

            await asyncio.to_thread(blocking)
            assert rec.sid in fake.recordings and not fake.deleted

    run(scenario())


def test_list_filters_by_day_as_twilio_documents() -> None:
    async def scenario() -> None:
        async with running_fake() as fake, aiohttp.ClientSession() as http:
            early = fake.add_recording(make_wav(1), call_sid=CALL)
            early.date_created = datetime(2026, 11, 20, 23, 59, tzinfo=UTC)
            late = fake.add_recording(make_wav(1), call_sid=CALL)
            late.date_created = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
            url = f"{fake.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings.json"
            headers = {"Authorization": basic_auth_header(ACCOUNT_SID, AUTH_TOKEN)}
            for query, expected in (
                ({"DateCreated": "2026-11-23"}, [late.sid]),
                ({"DateCreated<": "2026-11-20"}, [early.sid]),
                ({"DateCreated>": "2026-11-21"}, [late.sid]),
                ({}, [late.sid, early.sid]),  # newest first
            ):
                async with http.get(url, params=query, headers=headers) as r:
                    page = await r.json()
                assert [rec["sid"] for rec in page["recordings"]] == expected, query
                assert page["next_page_uri"] is None and page["page"] == 0

    run(scenario())
