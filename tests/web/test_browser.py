"""The web inbox in a real browser: log in, import the key, play an encrypted voicemail, act, live updates."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.e2e.harness import Stack, audio_part, decrypt, ffprobe, parse, running
from tests.fixtures.dovecot import MailClient
from tests.fixtures.gpg import GpgKeys
from tests.web.browser import chromium_page, screenshot
from vm2mail.devstack import keys

PASSPHRASE = "correct horse battery staple"
# The issue asks for changes to show "within 2 s"; they take about 0.2 s here. The assertion allows
# 5 s so a machine shared by parallel test runs does not fail it; the measured time is printed.
LIVE_BOUND_MS = 5000


async def log_in(page: Page, base: str, user: str, password: str) -> None:
    await page.goto(base)
    await page.get_by_label("E-mail login").fill(user)
    await page.get_by_label("Password", exact=True).fill(password)
    await page.get_by_role("button", name="Log in", exact=True).click()


async def play_first(page: Page) -> None:
    await page.evaluate(
        """() => { const p = document.getElementById('player');
                   window.__playing = new Promise(r => p.addEventListener('playing', r, {once: true})); }"""
    )
    await page.locator("#list li").first.get_by_role("button", name="Play").click()
    await page.evaluate("() => window.__playing.then(() => true)")


def test_log_in_import_key_play_delete_restore_and_live(
    stack: Callable[..., Stack], tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    s = stack({"201": {"encrypted": True, "name": "Anna Schmidt"}})
    account = s.accounts["201"]
    assert account.key is not None
    secret = keys.export_secret(account.key.secret_home, account.key.fingerprint).decode()
    client = MailClient(s.dovecot, account.user, account.password)

    async def scenario() -> None:
        async with running(s) as gateway:
            trace = await s.call(gateway, caller="+4930123456", caller_name="Jürgen Müller")
            assert trace.recording is not None
            assert await s.wait_job(trace.recording.sid) == "done"
            [stored] = await asyncio.to_thread(client.messages, "Voicemail")
            mp3 = audio_part(decrypt(parse(stored.raw), account.key))  # type: ignore[arg-type]
            expected = float(ffprobe(mp3, tmp_path)["format"]["duration"])

            async with chromium_page() as page:
                await log_in(page, f"http://127.0.0.1:{gateway.port}/inbox/", account.user, account.password)
                rows = page.locator("#list li")
                await expect(rows).to_have_count(1)
                await expect(rows.first).to_contain_text("Jürgen Müller")
                await expect(rows.first).to_contain_text("New")

                # The unprotected export gets a passphrase before it is stored in IndexedDB.
                await page.get_by_label("or paste it here").fill(secret)
                await page.get_by_label("Passphrase").fill(PASSPHRASE)
                await page.get_by_role("button", name="Import key").click()
                await expect(page.locator("#key-state")).to_contain_text(account.key.fingerprint)

                await play_first(page)
                duration = await page.evaluate("document.getElementById('player').duration")
                assert abs(duration - expected) < 0.3, (duration, expected)
                await expect(rows.first).to_contain_text("Heard")
                [heard] = await asyncio.to_thread(client.messages, "Voicemail")
                assert "\\Seen" in heard.flags

                # Download: the MP3 decrypted in the page, byte for byte the one in the message.
                async with page.expect_download() as download_info:
                    await rows.first.get_by_role("button", name="Download MP3").click()
                download = await download_info.value
                assert download.suggested_filename.endswith(".mp3")
                assert Path(await download.path()).read_bytes() == mp3

                # Saved in the mail client: the open page follows without reloading.
                await asyncio.to_thread(client.set_flags, "Voicemail", heard.uid, "\\Flagged")
                await expect(rows.first).to_contain_text("Saved", timeout=LIVE_BOUND_MS)

                await rows.first.get_by_role("button", name="Delete").click()
                await expect(page.locator("#empty")).to_be_visible()
                assert await asyncio.to_thread(client.messages, "Voicemail") == []
                [trashed] = await asyncio.to_thread(client.messages, "Trash")
                assert trashed.raw == stored.raw

                await page.get_by_role("button", name="Trash").click()
                await expect(rows).to_have_count(1)
                await rows.first.get_by_role("button", name="Restore").click()
                await expect(page.locator("#empty")).to_be_visible()
                assert await asyncio.to_thread(client.messages, "Trash") == []
                [back] = await asyncio.to_thread(client.messages, "Voicemail")
                assert back.raw == stored.raw

                # A new call while the inbox is open shows up without a reload.
                await page.get_by_role("button", name="All").click()
                await expect(rows).to_have_count(1)
                second = await s.call(gateway, caller="+4940555000", caller_name="Erika Mustermann")
                assert second.recording is not None
                assert await s.wait_job(second.recording.sid) == "done"
                appended = time.monotonic()
                await expect(rows).to_have_count(2, timeout=LIVE_BOUND_MS)
                print(f"new voicemail shown {time.monotonic() - appended:.2f} s after its APPEND")
                await expect(rows.first).to_contain_text("Erika Mustermann")
                await screenshot(page, "inbox", pytestconfig)
                await page.set_viewport_size({"width": 390, "height": 844})  # a phone
                await screenshot(page, "inbox-phone", pytestconfig)

    asyncio.run(scenario())


def test_wrong_key_or_passphrase_gets_a_clear_message_and_changes_nothing(
    stack: Callable[..., Stack], gpg_keys: GpgKeys
) -> None:
    s = stack({"201": {"encrypted": True}})
    account = s.accounts["201"]
    assert account.key is not None
    right = keys.export_secret(account.key.secret_home, account.key.fingerprint).decode()
    mallory = gpg_keys("Mallory", import_to_gateway=False)
    wrong = keys.export_secret(mallory.secret_home, mallory.fingerprint).decode()
    client = MailClient(s.dovecot, account.user, account.password)

    async def scenario() -> None:
        async with running(s) as gateway:
            trace = await s.call(gateway)
            assert trace.recording is not None
            assert await s.wait_job(trace.recording.sid) == "done"
            async with chromium_page() as page:
                base = f"http://127.0.0.1:{gateway.port}/inbox/"
                await page.goto(base)
                await page.get_by_label("E-mail login").fill(account.user)
                await page.get_by_label("Password", exact=True).fill("wrong password")
                await page.get_by_role("button", name="Log in", exact=True).click()
                await expect(page.get_by_role("alert")).to_have_text("Wrong login or password.")
                await log_in(page, base, account.user, account.password)
                alert = page.get_by_role("alert")

                await page.get_by_label("or paste it here").fill(
                    "-----BEGIN PGP PRIVATE KEY BLOCK-----\nnonsense"
                )
                await page.get_by_label("Passphrase").fill(PASSPHRASE)
                await page.get_by_role("button", name="Import key").click()
                await expect(alert).to_have_text("That is not an OpenPGP secret key.")

                await page.get_by_label("or paste it here").fill(wrong)
                await page.get_by_label("Passphrase").fill(PASSPHRASE)
                await page.get_by_role("button", name="Import key").click()
                await expect(page.locator("#key-state")).to_contain_text(mallory.fingerprint)
                await page.locator("#list li").first.get_by_role("button", name="Play").click()
                await expect(alert).to_contain_text("cannot be decrypted with your key")
                await expect(page.locator("#list li").first).to_contain_text("New")
                [message] = await asyncio.to_thread(client.messages, "Voicemail")
                assert "\\Seen" not in message.flags

                await page.get_by_role("button", name="Remove key from this browser").click()
                await page.get_by_label("or paste it here").fill(right)
                await page.get_by_label("Passphrase").fill(PASSPHRASE)
                await page.get_by_role("button", name="Import key").click()
                await expect(page.locator("#key-state")).to_contain_text("unlocked")

                # A new page load: the key is still in IndexedDB, locked, and needs its passphrase.
                await page.reload()
                await expect(page.locator("#key-state")).to_contain_text("(locked)")
                await page.get_by_label("Passphrase").fill("not the passphrase")
                await page.get_by_role("button", name="Unlock").click()
                await expect(alert).to_have_text("Wrong passphrase.")
                await page.locator("#list li").first.get_by_role("button", name="Play").click()
                await expect(alert).to_contain_text("Import and unlock your key")
                await page.get_by_label("Passphrase").fill(PASSPHRASE)
                await page.get_by_role("button", name="Unlock").click()
                await expect(page.locator("#key-state")).to_contain_text("unlocked")
                await play_first(page)

                # Log out: the session cookie is gone and the key is locked again in this page.
                await page.get_by_role("button", name="Log out", exact=True).click()
                await expect(page.get_by_label("E-mail login")).to_be_visible()
                await expect(page.locator("#list li")).to_have_count(0)
                await page.reload()
                await expect(page.get_by_label("E-mail login")).to_be_visible()
                await log_in(page, base, account.user, account.password)
                await expect(page.locator("#key-state")).to_contain_text("(locked)")

    asyncio.run(scenario())


def test_record_a_greeting_in_the_browser_and_the_next_caller_hears_it(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {"encrypted": False, "forward_to": "+15550009999"}})
    s.config = dataclasses.replace(
        s.config, twilio=dataclasses.replace(s.config.twilio, sms_from="+15550001000")
    )
    account = s.accounts["201"]
    client = MailClient(s.dovecot, account.user, account.password)

    async def scenario() -> None:
        async with running(s) as gateway:
            before = await s.call(gateway)
            assert not any("/media/" in body for _, body in before.steps)  # the spoken standard greeting
            async with chromium_page() as page:
                await log_in(page, f"http://127.0.0.1:{gateway.port}/inbox/", account.user, account.password)
                status = page.locator("#status")
                await page.get_by_role("button", name="Hear current greeting").click()
                await expect(page.get_by_role("alert")).to_have_text(
                    "No recorded greeting: callers hear the standard one."
                )

                # Chromium's fake microphone (--use-fake-device-for-media-stream) plays a beep.
                await page.get_by_role("button", name="Record a new greeting").click()
                await expect(status).to_contain_text("Recording")
                await page.wait_for_timeout(2500)
                await page.get_by_role("button", name="Stop and save").click()
                await expect(status).to_have_text(
                    "New greeting saved: the next caller hears it.", timeout=15000
                )
                [greeting] = await asyncio.to_thread(client.messages, "Voicemail/Greetings")
                assert b"audio/mpeg" in greeting.raw

                await page.evaluate(
                    """() => { const p = document.getElementById('greeting-player');
                       window.__greeting = new Promise(r => p.addEventListener('playing', r, {once: true}));
                    }"""
                )
                await page.get_by_role("button", name="Hear current greeting").click()
                await page.evaluate("() => window.__greeting.then(() => true)")
                seconds = await page.evaluate("document.getElementById('greeting-player').duration")
                assert 1.5 < seconds < 4.0, seconds

                after = await s.call(gateway)
                assert any("/media/" in body and "<Play" in body for _, body in after.steps)
                assert after.recording is not None
                assert await s.wait_job(after.recording.sid) == "done"

                # An upload that is not audio is refused and the recorded greeting stays.
                await page.get_by_label("Or upload an audio file").set_input_files(
                    files=[{"name": "note.wav", "mimeType": "audio/wav", "buffer": b"not audio at all"}]
                )
                async with page.expect_response(
                    lambda r: r.url.endswith("/inbox/api/greeting") and r.request.method == "PUT",
                    timeout=60_000,
                ) as refusal:
                    await page.get_by_role("button", name="Upload greeting").click()
                assert (await refusal.value).status == 400
                await expect(page.get_by_role("alert")).to_have_text(
                    "This file is not audio the gateway can read."
                )
                assert [m.uid for m in await asyncio.to_thread(client.messages, "Voicemail/Greetings")] == [
                    greeting.uid
                ]

                # Acting on a caller: an SMS reply and "call me and connect me", through Twilio.
                row = page.locator("#list li").first
                await row.get_by_role("button", name="Reply by SMS").click()
                await row.get_by_label("Text message to").fill("Thanks, I will call you back.")
                await row.get_by_role("button", name="Send SMS").click()
                await expect(status).to_contain_text("SMS sent to")
                assert [m["Body"] for m in s.fake.messages] == ["Thanks, I will call you back."]
                await row.get_by_role("button", name="Call me and connect").click()
                await expect(status).to_contain_text("Your phone rings now")
                assert [c["To"] for c in s.fake.placed] == ["+15550009999"]

    asyncio.run(scenario())


def test_german_page_follows_a_deletion_in_the_mail_client(stack: Callable[..., Stack]) -> None:
    s = stack({"202": {"encrypted": False, "language": "de-DE"}})
    account = s.accounts["202"]
    client = MailClient(s.dovecot, account.user, account.password)

    async def scenario() -> None:
        async with running(s) as gateway:
            trace = await s.call(gateway, caller="+4930123456", caller_name="Erika Mustermann")
            assert trace.recording is not None
            assert await s.wait_job(trace.recording.sid) == "done"
            async with chromium_page() as page:
                await log_in(page, f"http://127.0.0.1:{gateway.port}/inbox/", account.user, account.password)
                rows = page.locator("#list li")
                await expect(rows).to_have_count(1)
                # The mailbox's language: German words, states written out.
                await expect(rows.first).to_contain_text("Neu")
                await expect(page.get_by_role("button", name="Abmelden", exact=True)).to_be_visible()
                await expect(rows.first.get_by_role("button", name="Löschen")).to_be_visible()
                await expect(page.locator("html")).to_have_attribute("lang", "de")

                [message] = await asyncio.to_thread(client.messages, "Voicemail")
                await asyncio.to_thread(client.move, "Voicemail", message.uid, "Trash")
                await expect(page.locator("#empty")).to_have_text("Keine Nachrichten.", timeout=LIVE_BOUND_MS)

                await page.get_by_label("Sprache").select_option("en")
                await expect(page.get_by_role("button", name="Log out", exact=True)).to_be_visible()
                await page.get_by_role("button", name="Trash").click()
                await expect(rows.first).to_contain_text("Erika Mustermann")
                await expect(rows.first.get_by_role("button", name="Restore")).to_be_visible()

    asyncio.run(scenario())


def test_private_mailbox_shows_the_caller_once_decrypted_in_the_page(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {"encrypted": True, "private": True}})
    account = s.accounts["201"]
    assert account.key is not None
    secret = keys.export_secret(account.key.secret_home, account.key.fingerprint).decode()

    async def scenario() -> None:
        async with running(s) as gateway:
            trace = await s.call(gateway, caller="+4930123456", caller_name="Jürgen Müller")
            assert trace.recording is not None
            assert await s.wait_job(trace.recording.sid) == "done"
            async with chromium_page() as page:
                await log_in(page, f"http://127.0.0.1:{gateway.port}/inbox/", account.user, account.password)
                row = page.locator("#list li").first
                # The server knows no caller of a private mailbox's voicemail...
                await expect(row).to_contain_text("Unknown caller")
                await page.get_by_label("or paste it here").fill(secret)
                await page.get_by_label("Passphrase").fill(PASSPHRASE)
                await page.get_by_role("button", name="Import key").click()
                await play_first(page)
                # ...the page learns it from the protected headers it decrypted.
                await expect(row).to_contain_text("Jürgen Müller")
                await expect(row.get_by_role("link", name="Call +4930123456")).to_be_visible()

    asyncio.run(scenario())
