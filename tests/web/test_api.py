"""The inbox API refuses bad input with a clear message and changes nothing; audio streams with Range."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from tests.e2e.harness import Stack, ffprobe, gateway_up, running
from tests.fixtures.dovecot import MailClient
from tests.web.client import InboxClient
from vm2mail.web import session as sessions
from vm2mail.web.session import GENERATION_CACHE_SECONDS


def test_login_refusals_lockout_and_cookie_attributes(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {"encrypted": False}}, menu={"lockout_failures": 3, "lockout_minutes": 5})
    account = s.accounts["201"]

    async def scenario() -> None:
        async with running(s) as gateway:
            client = InboxClient(f"http://127.0.0.1:{gateway.port}")
            reply = await client.login(account.user, account.password)
            assert reply.status == 200
            cookie = client.set_cookie.lower()
            for attribute in ("httponly", "secure", "samesite=strict", "path=/inbox/"):
                assert attribute in cookie, cookie
            assert "default-src 'self'" in reply.headers["Content-Security-Policy"]
            assert "unsafe-inline" not in reply.headers["Content-Security-Policy"]
            assert (await client.get("/inbox/api/session")).json()["mailbox"] == "201"

            stranger = InboxClient(client.base)
            wrong = await stranger.login(account.user, "not-the-password")
            assert (wrong.status, wrong.json()["error"]) == (401, "wrong")
            assert stranger.cookie is None
            nobody = f"nobody-{secrets.token_hex(4)}@example.org"
            unknown = await stranger.login(nobody, "whatever")
            assert (unknown.status, unknown.json()["error"]) == (401, "wrong")
            # Asked at the IMAP server like a known login (its refusal takes as long), never shortcut.
            # Dovecot's log process may write the line a moment after the connection closed.
            for _ in range(50):
                if f"user=<{nobody}>" in s.dovecot.log_file.read_text():
                    break
                await asyncio.sleep(0.1)
            assert f"user=<{nobody}>" in s.dovecot.log_file.read_text()
            assert (await stranger.login(account.user, "again-wrong")).status == 401
            locked = await stranger.login(account.user, "third-wrong")  # third failure locks
            assert (locked.status, locked.json()["error"]) == (423, "locked")
            still = await stranger.login(account.user, account.password)  # even the right password
            assert (still.status, still.json()["error"]) == (423, "locked")
            assert "locked" in still.json()["message"]
            page = await stranger.get("/inbox/api/session")
            assert (page.status, page.json()["error"]) == (401, "session")

            bad = await stranger.request("POST", "/inbox/api/login", data="login=x&password=y")
            assert bad.status == 415  # a cross-site form cannot log anyone in

    asyncio.run(scenario())


def test_forged_expired_and_logged_out_cookies_and_csrf(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {"encrypted": False}})
    account = s.accounts["201"]
    mail = MailClient(s.dovecot, account.user, account.password)
    secret = s.config.server.secret_key

    async def scenario() -> None:
        async with running(s) as gateway:
            trace = await s.call(gateway)
            assert trace.recording is not None
            assert await s.wait_job(trace.recording.sid) == "done"
            [before] = await asyncio.to_thread(mail.messages, "Voicemail")
            client = InboxClient(f"http://127.0.0.1:{gateway.port}")
            assert (await client.login(account.user, account.password)).status == 200
            path = f"/inbox/api/voicemails/{before.uid}/delete"

            no_csrf = await client.post(path, csrf=False)
            assert (no_csrf.status, no_csrf.json()["error"]) == (403, "csrf")
            other = InboxClient(client.base)
            await other.login(account.user, account.password)
            foreign = await client.post(path, csrf=False, headers={"X-CSRF-Token": other.csrf})
            assert foreign.status == 403  # a token belongs to one session

            payload, _, mac = (client.cookie or "").partition(".")
            for forged in (
                payload + "." + mac[:-2] + ("AA" if not mac.endswith("AA") else "BB"),
                sessions.issue("another-secret-key-0123456789", "201", 0, 3600)[0],
                "garbage",
            ):
                reply = await InboxClient(client.base, cookie=forged, csrf=client.csrf).post(path)
                assert (reply.status, reply.json()["error"]) == (401, "session")
            expired, _ = sessions.issue(secret, "201", 0, -1)
            reply = await InboxClient(client.base, cookie=expired).get("/inbox/api/voicemails")
            assert (reply.status, reply.json()["error"]) == (401, "session")
            assert [m.uid for m in await asyncio.to_thread(mail.messages, "Voicemail")] == [before.uid]

            # "Log out everywhere" ends every session of the mailbox, this one and the other.
            cookies = [client.cookie, other.cookie]
            assert (await client.get("/inbox/api/voicemails")).status == 200
            assert (await other.post("/inbox/api/logout/everywhere")).status == 200
            for cookie in cookies:
                reply = await InboxClient(client.base, cookie=cookie).get("/inbox/api/voicemails")
                assert (reply.status, reply.json()["error"]) == (401, "session")
            again = InboxClient(client.base)
            assert (await again.login(account.user, account.password)).status == 200
            assert (await again.get("/inbox/api/voicemails")).json()["total"] == 1

    asyncio.run(scenario())


def test_other_mailboxes_uids_and_non_voicemails_are_refused(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {"encrypted": False}, "202": {"encrypted": False}})
    anna, ben = s.accounts["201"], s.accounts["202"]
    anna_mail = MailClient(s.dovecot, anna.user, anna.password)
    ben_mail = MailClient(s.dovecot, ben.user, ben.password)

    async def scenario() -> None:
        async with running(s) as gateway:
            for to in ("+15550002002", "+15550002002", "+15550002001"):
                trace = await s.call(gateway, to=to)
                assert trace.recording is not None
                assert await s.wait_job(trace.recording.sid) == "done"
            note = EmailMessage()
            note["From"], note["To"], note["Subject"] = "boss@example.org", anna.user, "Lunch?"
            note.set_content("Not a voicemail.")
            note_uid = await asyncio.to_thread(anna_mail.append, "Voicemail", note.as_bytes())
            ben_uids = [m.uid for m in await asyncio.to_thread(ben_mail.messages, "Voicemail")]
            client = InboxClient(f"http://127.0.0.1:{gateway.port}")
            assert (await client.login(anna.user, anna.password)).status == 200
            listing = (await client.get("/inbox/api/voicemails")).json()
            assert [i["uid"] for i in listing["items"]] == [1]  # the note is not listed
            for uid in (max(ben_uids), note_uid):
                for method, path in (
                    ("GET", f"/inbox/api/voicemails/{uid}/message"),
                    ("GET", f"/inbox/api/voicemails/{uid}/audio"),
                    ("POST", f"/inbox/api/voicemails/{uid}/heard"),
                    ("POST", f"/inbox/api/voicemails/{uid}/delete"),
                ):
                    reply = await client.request(method, path)
                    assert (reply.status, reply.json()["error"]) == (404, "not-found"), (method, path)
            bad = await client.get("/inbox/api/voicemails/abc/message")
            assert (bad.status, bad.json()["error"]) == (400, "bad-uid")
            assert (await client.get("/inbox/api/voicemails?view=Drafts")).status == 400
            ben_after = await asyncio.to_thread(ben_mail.messages, "Voicemail")
            assert [(m.uid, m.flags) for m in ben_after] == [(u, frozenset()) for u in ben_uids]
            anna_after = await asyncio.to_thread(anna_mail.messages, "Voicemail")
            assert sorted(m.uid for m in anna_after) == [1, note_uid]
            assert all("\\Seen" not in m.flags for m in anna_after)

    asyncio.run(scenario())


def test_unencrypted_audio_streams_with_range(stack: Callable[..., Stack], tmp_path: Path) -> None:
    s = stack({"201": {"encrypted": False}, "202": {"encrypted": True}})

    async def scenario() -> None:
        async with running(s) as gateway:
            for to in ("+15550002001", "+15550002002"):
                trace = await s.call(gateway, to=to)
                assert trace.recording is not None
                assert await s.wait_job(trace.recording.sid) == "done"
            client = InboxClient(f"http://127.0.0.1:{gateway.port}")
            await client.login(s.accounts["201"].user, s.accounts["201"].password)
            whole = await client.get("/inbox/api/voicemails/1/audio")
            assert whole.status == 200 and whole.headers["Content-Type"] == "audio/mpeg"
            assert whole.headers["Accept-Ranges"] == "bytes"
            assert 9 < float(ffprobe(whole.body, tmp_path)["format"]["duration"]) < 13
            part = await client.get("/inbox/api/voicemails/1/audio", headers={"Range": "bytes=100-199"})
            assert part.status == 206 and part.body == whole.body[100:200]
            assert part.headers["Content-Range"] == f"bytes 100-199/{len(whole.body)}"
            tail = await client.get("/inbox/api/voicemails/1/audio", headers={"Range": "bytes=-50"})
            assert tail.status == 206 and tail.body == whole.body[-50:]
            beyond = await client.get("/inbox/api/voicemails/1/audio", headers={"Range": "bytes=999999999-"})
            assert beyond.status == 416

            encrypted = InboxClient(client.base)
            await encrypted.login(s.accounts["202"].user, s.accounts["202"].password)
            refused = await encrypted.get("/inbox/api/voicemails/1/audio")
            assert (refused.status, refused.json()["error"]) == (409, "encrypted")
            raw = await encrypted.get("/inbox/api/voicemails/1/message")
            assert raw.status == 200 and b"multipart/encrypted" in raw.body
            assert b"-----BEGIN PGP MESSAGE-----" in raw.body

    asyncio.run(scenario())


def test_call_me_and_connect_and_sms_reply_once(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {"encrypted": False, "forward_to": "+15550009999"}})
    # The stack points twilio at its stand-in; SMS replies also need a sender number.
    s.config = dataclasses.replace(
        s.config, twilio=dataclasses.replace(s.config.twilio, sms_from="+15550001000")
    )
    account = s.accounts["201"]
    number = s.config.mailboxes["201"].numbers[0]

    async def scenario() -> None:
        async with running(s) as gateway:
            for caller in ("+4930123456", None):
                trace = await s.call(gateway, caller=caller)
                assert trace.recording is not None
                assert await s.wait_job(trace.recording.sid) == "done"
            client = InboxClient(f"http://127.0.0.1:{gateway.port}")
            session = (await client.login(account.user, account.password)).json()
            assert session["can_call"] and session["can_sms"]
            listing = (await client.get("/inbox/api/voicemails")).json()["items"]
            known = next(i["uid"] for i in listing if i["caller"] == "+4930123456")
            withheld = next(i["uid"] for i in listing if i["caller"] is None)

            assert (await client.post(f"/inbox/api/voicemails/{known}/callback", csrf=False)).status == 403
            assert s.fake.placed == []
            reply = await client.post(f"/inbox/api/voicemails/{known}/callback")
            assert reply.status == 200, reply.body
            [placed] = s.fake.placed
            assert (placed["To"], placed["From"]) == ("+15550009999", number)  # the owner's phone rings
            assert f'<Dial callerId="{number}"><Number>+4930123456</Number></Dial>' in placed["Twiml"]
            refused = await client.post(f"/inbox/api/voicemails/{withheld}/callback")
            assert (refused.status, refused.json()["error"]) == (409, "no-caller")

            sms = f"/inbox/api/voicemails/{known}/sms"
            body = {"text": "Got your message, call you at 3.", "request": "req-0123456789"}
            first = await client.post(sms, json=body)
            assert first.status == 200 and first.json()["already"] is False
            again = await client.post(sms, json=body)  # the same request retried: no second SMS
            assert again.status == 200 and again.json()["already"] is True
            assert [(m["To"], m["From"], m["Body"]) for m in s.fake.messages] == [
                ("+4930123456", "+15550001000", "Got your message, call you at 3.")
            ]
            long = await client.post(sms, json={"text": "x" * 321, "request": "req-abcdefghij"})
            assert (long.status, long.json()["error"]) == (400, "sms-too-long")
            none = await client.post(
                f"/inbox/api/voicemails/{withheld}/sms", json=body | {"request": "req-x1234567"}
            )
            assert (none.status, none.json()["error"]) == (409, "no-caller")
            assert len(s.fake.messages) == 1

    asyncio.run(scenario())


def test_list_is_newest_first_with_filters_pages_and_local_time(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {"encrypted": False, "timezone": "America/New_York"}}, web={"page_size": 20})
    account = s.accounts["201"]
    mail = MailClient(s.dovecot, account.user, account.password)
    start = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    with mail.session() as imap:  # one session: 45 logins in a row would only test Dovecot's auth
        imap.create("Voicemail")
        for i in range(45):
            caller = f"+4930{1000 + i}"
            raw = (
                f"From: <voicemail@vm.example.com>\r\nTo: {account.user}\r\n"
                f"Date: {format_datetime(start + timedelta(minutes=i))}\r\nSubject: Voicemail\r\n"
                f"Message-ID: <RE{i:032x}@vm.example.com>\r\nX-Vm2mail-Kind: voicemail\r\n"
                f"X-Vm2mail-Caller: {caller}\r\nX-Vm2mail-Caller-Name: Caller {i}\r\n"
                f"X-Vm2mail-Duration: {10 + i}\r\n"
                f"X-Vm2mail-Mailbox: 201\r\nContent-Type: text/plain\r\n\r\nVoicemail {i}\r\n"
            ).encode()
            flags = "" if i % 3 == 0 else "\\Seen \\Flagged" if i % 5 == 0 else "\\Seen"
            status, _ = imap.append("Voicemail", f"({flags})" if flags else None, None, raw)
            assert status == "OK"

    async def scenario() -> None:
        async with running(s) as gateway:
            client = InboxClient(f"http://127.0.0.1:{gateway.port}")
            await client.login(account.user, account.password)
            first = (await client.get("/inbox/api/voicemails?view=all&page=1")).json()
            assert (first["total"], first["pages"], len(first["items"])) == (45, 3, 20)
            newest = first["items"][0]
            assert (newest["caller_name"], newest["caller"], newest["duration"]) == (
                "Caller 44",
                "+49301044",
                54,
            )
            assert newest["caller_display"] == "+49 30 1044"  # a German number, shown internationally
            # 12:44 UTC on 10 January is 07:44 in New York (EST, UTC-5).
            assert newest["date"] == "2026-01-10T07:44:00-05:00"
            assert [i["caller_name"] for i in first["items"]] == [f"Caller {n}" for n in range(44, 24, -1)]
            last = (await client.get("/inbox/api/voicemails?view=all&page=3")).json()
            assert [i["caller_name"] for i in last["items"]] == [f"Caller {n}" for n in range(4, -1, -1)]
            assert (await client.get("/inbox/api/voicemails?page=4")).json()["items"] == []

            new = (await client.get("/inbox/api/voicemails?view=new")).json()
            assert new["total"] == 15 and all(i["state"] == "new" for i in new["items"])
            saved = (await client.get("/inbox/api/voicemails?view=saved")).json()
            expected = [n for n in range(44, -1, -1) if n % 3 and n % 5 == 0]
            assert [i["caller_name"] for i in saved["items"]] == [f"Caller {n}" for n in expected]
            assert all(i["state"] == "saved" for i in saved["items"])
            assert first["counts"] == {"new": 15, "saved": len(expected), "heard": 30 - len(expected)}
            trash = (await client.get("/inbox/api/voicemails?view=trash")).json()
            assert trash["total"] == 0
            assert trash["counts"] == first["counts"]  # the filter buttons count the inbox folder

    asyncio.run(scenario())


def test_a_session_works_on_every_instance_and_logs_out_everywhere(
    stack: Callable[..., Stack], tmp_path: Path
) -> None:
    s = stack({"201": {"encrypted": False}})
    account = s.accounts["201"]
    other = dataclasses.replace(
        s.config, server=dataclasses.replace(s.config.server, spool_dir=tmp_path / "spool-b")
    )

    async def scenario() -> None:
        async with running(s) as a, gateway_up(other) as b:
            on_a = InboxClient(f"http://127.0.0.1:{a.port}")
            assert (await on_a.login(account.user, account.password)).status == 200
            # The same cookie and CSRF token on the other instance: no shared session store needed.
            on_b = InboxClient(f"http://127.0.0.1:{b.port}", cookie=on_a.cookie, csrf=on_a.csrf)
            assert (await on_b.get("/inbox/api/session")).json()["mailbox"] == "201"
            assert (await on_b.get("/inbox/api/voicemails")).status == 200
            assert (await on_a.get("/inbox/api/voicemails")).status == 200  # A now caches the generation

            assert (await on_b.post("/inbox/api/logout/everywhere")).status == 200
            await asyncio.sleep(GENERATION_CACHE_SECONDS + 0.5)  # A trusts its cached copy this long
            after = await on_a.get("/inbox/api/voicemails")
            assert (after.status, after.json()["error"]) == (401, "session")

    asyncio.run(scenario())


def test_disabled_inbox_is_not_served(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {"encrypted": False}}, web={"enabled": False})
    account = s.accounts["201"]

    async def scenario() -> None:
        async with running(s) as gateway:
            client = InboxClient(f"http://127.0.0.1:{gateway.port}")
            assert (await client.get("/inbox/")).status == 404
            refused = await client.login(account.user, account.password)
            assert (refused.status, refused.json()["error"]) == (404, "disabled")
            assert client.cookie is None

    asyncio.run(scenario())


def test_imap_outage_answers_503_and_counts_no_failure(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {"encrypted": False}}, menu={"lockout_failures": 2, "lockout_minutes": 5})
    account = s.accounts["201"]

    async def scenario() -> None:
        async with running(s) as gateway:
            client = InboxClient(f"http://127.0.0.1:{gateway.port}")
            assert (await client.login(account.user, account.password)).status == 200
            s.dovecot.stop()
            try:
                down = await InboxClient(client.base).login(account.user, "wrong while down")
                assert (down.status, down.json()["error"]) == (503, "unavailable")
                listing = await client.get("/inbox/api/voicemails")
                assert (listing.status, listing.json()["error"]) == (503, "unavailable")
            finally:
                s.dovecot.start()
            # The outage counted no failure: one wrong password now is the first of two, not a lock.
            wrong = await InboxClient(client.base).login(account.user, "wrong again")
            assert (wrong.status, wrong.json()["error"]) == (401, "wrong")
            assert (await InboxClient(client.base).login(account.user, account.password)).status == 200

    asyncio.run(scenario())
