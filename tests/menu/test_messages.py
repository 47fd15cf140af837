"""Listening by phone: play, 4/5/6, delete/restore, save, envelope, callback, both ways with IMAP."""

from __future__ import annotations

import email.policy
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

from tests.e2e.harness import post_recording_callback
from tests.fixtures.twilio import make_wav, run
from tests.menu.conftest import MenuEnv
from tests.menu.walker import Page, Walker, ffprobe_seconds, plain_mail
from vm2mail.telephony import media


def uid_of(page: Page, secret: str) -> tuple[str, str, int]:
    """The message a Play URL names, read from its sealed token with the gateway's key."""
    [url] = page.plays
    found = media.verify(secret, url.rsplit("/", 1)[1].removesuffix(".mp3"))
    assert found is not None
    return found


async def audio_seconds(walker: Walker, page: Page) -> float:
    status, body, headers = await walker.fetch(page.plays[0])
    assert status == 200 and headers["Content-Type"] == "audio/mpeg"
    assert headers["Cache-Control"] == "no-store"
    return ffprobe_seconds(body)


def test_play_next_previous_repeat_marks_seen(menu_env: Callable[..., MenuEnv]) -> None:
    env = menu_env()

    async def scenario() -> None:
        uids = await env.deposit(3, seconds=2.0)
        env.client.append("Voicemail", plain_mail())  # not a voicemail: ignored by the menu
        async with env.up() as gw, env.session() as session:
            walker = await env.login(session, gw)
            assert "You have 3 new messages and 0 saved messages." in walker.page.text  # type: ignore[union-attr]
            first = await walker.press("1")
            assert first.text.startswith("New message 1 of 3.")
            assert 1.5 < await audio_seconds(walker, first) < 2.6
            assert first.gather is not None and first.gather.get("numDigits") == "1"
            seen = {m.uid: m.seen for m in env.client.messages("Voicemail")}
            assert seen[uids[0]] and not seen[uids[1]] and not seen[uids[2]]
            second = await walker.press("6")
            assert second.text.startswith("New message 2 of 3.") and uid_of(
                second, walker.config.server.secret_key
            ) != uid_of(first, walker.config.server.secret_key)
            back = await walker.press("4")
            assert back.text.startswith("Message 1 of 3.")  # heard now, still in this call's sequence
            again = await walker.press("5")
            assert again.text.startswith("Message 1 of 3.")
            await walker.press("6")
            third = await walker.press("6")
            assert third.text.startswith("New message 3 of 3.")
            end = await walker.press("6")
            assert end.text.startswith("There are no more messages.") and not end.plays
            assert all(m.seen for m in env.client.messages("Voicemail") if m.uid in uids)
            # Back at the main menu the counts follow: nothing new any more.
            await walker.press("0")
            page = await walker.press("#")
            assert "You have 0 new messages and 0 saved messages, and 3 old messages." in page.text

    run(scenario())


def test_six_and_four_cross_between_new_and_old(menu_env: Callable[..., MenuEnv]) -> None:
    env = menu_env()

    async def scenario() -> None:
        uids = await env.deposit(3, seconds=2.0)
        env.client.set_flags("Voicemail", uids[0], "\\Seen")  # heard earlier in a mail client: old
        async with env.up() as gw, env.session() as session:
            walker = await env.login(session, gw)
            assert "You have 2 new messages and 0 saved messages, and 1 old message." in walker.page.text  # type: ignore[union-attr]
            first = await walker.press("1")
            assert first.text.startswith("New message 1 of 2.")
            last_new = await walker.press("6")
            assert last_new.text.startswith("New message 2 of 2.")
            old = await walker.press("6")
            assert old.text.startswith("No more new messages. Your old messages. Message 1.")
            back = await walker.press("4")
            assert back.text.startswith("Back to your new messages. Message 2 of 2.")
            assert uid_of(back, walker.config.server.secret_key) == uid_of(
                last_new, walker.config.server.secret_key
            )
            start = await walker.press("4")
            assert start.text.startswith("Message 1 of 2.") and uid_of(
                start, walker.config.server.secret_key
            ) == uid_of(first, walker.config.server.secret_key)
            none = await walker.press("4")
            assert none.text.startswith("There are no more messages.") and not none.plays

    run(scenario())


def test_delete_restore_save_in_imap(menu_env: Callable[..., MenuEnv]) -> None:
    env = menu_env()

    async def scenario() -> None:
        [uid, second] = await env.deposit(2)
        async with env.up() as gw, env.session() as session:
            walker = await env.login(session, gw)
            await walker.press("1")
            page = await walker.press("7")
            assert page.text.startswith("Message deleted. Press 7 again to restore it.")
            assert [m.uid for m in env.client.messages("Voicemail")] == [second]
            [trashed] = env.client.messages("Trash")
            assert trashed.seen
            page = await walker.press("7")
            assert page.text.startswith("Message restored.")
            assert env.client.messages("Trash") == []
            restored = [m.uid for m in env.client.messages("Voicemail") if m.uid != second]
            assert len(restored) == 1 and restored[0] != uid
            page = await walker.press("9")
            assert page.text.startswith("Message saved.")
            flagged = {m.uid for m in env.client.messages("Voicemail") if "\\Flagged" in m.flags}
            assert flagged == set(restored)
            # 6 after a delete continues with the next message by date.
            await walker.press("7")
            page = await walker.press("6")
            assert page.text.startswith("New message") and len(page.plays) == 1
            await walker.press("0")
            page = await walker.press("#")
            assert "You have 0 new messages and 0 saved messages, and 1 old message." in page.text

    run(scenario())


def test_envelope_and_call_back(menu_env: Callable[..., MenuEnv]) -> None:
    env = menu_env()

    async def scenario() -> None:
        await env.deposit(1, caller="+4930123456", seconds=3.0)
        await env.deposit(1, caller=None)
        async with env.up() as gw, env.session() as session:
            walker = await env.login(session, gw)
            await walker.press("1")
            page = await walker.press("3")
            # 2026-11-20 09:15 UTC is 10:15 in Berlin (the mailbox's time zone), a Friday.
            assert page.text == (
                "Received on Friday, November 20 at 10:15 AM. From 4 9 3 0 1 2 3 4 5 6. "
                "Length 3 seconds. Press 2 to call back."
            )
            page = await walker.press("2")
            assert page.dial is not None and page.dial.get("callerId") == env.box.numbers[0]
            assert [n.text for n in page.dial] == ["+4930123456"]
            page = await walker.post(page.dial.get("action") or "", {"DialCallStatus": "completed"})
            assert "You have" in page.text
            await walker.press("1")
            page = await walker.press("6")
            page = await walker.press("3")
            assert "From an unknown caller." in page.text and "call back" not in page.text
            page = await walker.press("2")
            assert page.text.startswith("The caller's number is unknown") and page.dial is None

    run(scenario())


def test_mail_client_changes_show_in_the_next_step(menu_env: Callable[..., MenuEnv]) -> None:
    env = menu_env()

    async def scenario() -> None:
        uids = await env.deposit(3)
        async with env.up() as gw, env.session() as session:
            walker = await env.login(session, gw)
            assert "You have 3 new messages and 0 saved" in walker.page.text  # type: ignore[union-attr]
            env.client.set_flags("Voicemail", uids[0], "\\Seen", "\\Flagged")
            env.client.set_flags("Voicemail", uids[1], "\\Seen")
            page = await walker.press("*")
            page = await walker.press("0")
            page = await walker.press("#")
            assert "You have 1 new message and 1 saved message, and 1 old message." in page.text
            page = await walker.press("1")
            assert page.text.startswith("New message 1. Press 5")
            env.client.move("Voicemail", uids[2], "Trash")  # deleted in the mail client meanwhile
            page = await walker.press("5")
            assert page.text.startswith("This message is no longer in your mailbox.")
            env.client.set_flags("Voicemail", uids[0], "\\Seen", add=False)
            page = await walker.press("1")
            assert page.text.startswith("New message 1. Press 5") and len(page.plays) == 1

    run(scenario())


def test_message_without_playback_key_is_announced(menu_env: Callable[..., MenuEnv]) -> None:
    env = menu_env()

    async def scenario() -> None:
        [uid] = await env.deposit(1, playback=False)
        async with env.up() as gw, env.session() as session:
            walker = await env.login(session, gw)
            page = await walker.press("1")
            assert page.plays == []
            assert "Received on Friday, November 20" in page.text
            assert "This message can only be opened in your e-mail." in page.text
            [message] = env.client.messages("Voicemail")
            assert message.uid == uid and not message.seen  # not heard, so still new
            assert (await walker.press("9")).text.startswith("Message saved.")

    run(scenario())


def asterisk_message(wav: bytes) -> bytes:
    """A voicemail as Asterisk's IMAP storage writes it: X-Asterisk-VM-* headers, WAV attachment."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = '"Asterisk PBX" <asterisk@pbx.example.com>'
    msg["To"] = "user@example.com"
    msg["Subject"] = "[PBX]: New message 1 in mailbox 201"
    msg["Date"] = "Thu, 19 Nov 2026 16:30:00 +0100"
    msg["X-Asterisk-VM-Message-Num"] = "1"
    msg["X-Asterisk-VM-Caller-ID-Num"] = "4930555777"
    msg["X-Asterisk-VM-Caller-ID-Name"] = "Front Desk"
    msg["X-Asterisk-VM-Duration"] = "2"
    msg["X-Asterisk-VM-Orig-date"] = "Thursday, November 19, 2026 at 04:30:00 PM"
    msg.set_content("Dear User: you have a new voicemail.")
    msg.add_attachment(wav, maintype="audio", subtype="x-wav", filename="msg0000.wav")
    return msg.as_bytes()


def test_asterisk_voicemails_play_too(menu_env: Callable[..., MenuEnv]) -> None:
    env = menu_env()

    async def scenario() -> None:
        env.client.append("Voicemail", asterisk_message(make_wav(2.0)))
        async with env.up() as gw, env.session() as session:
            walker = await env.login(session, gw)
            assert "You have 1 new message" in walker.page.text  # type: ignore[union-attr]
            page = await walker.press("1")
            assert 1.5 < await audio_seconds(walker, page) < 2.6
            page = await walker.press("3")
            assert "Thursday, November 19 at 4:30 PM" in page.text and "Front Desk" in page.text

    run(scenario())


def test_voicemail_through_the_pipeline_plays_by_phone(
    menu_env: Callable[..., MenuEnv], tmp_path: Path
) -> None:
    env = menu_env()

    async def scenario() -> None:
        async with env.up() as gw, env.session() as session:
            recording = env.stack.fake.add_recording(make_wav(3.0), call_sid="CA" + "cd" * 16)
            status = await post_recording_callback(
                env.stack,
                gw.port,
                mailbox="201",
                recording_sid=recording.sid,
                recording_url=env.stack.fake.recording_url(recording),
            )
            assert status == 204
            assert await env.stack.wait_job(recording.sid) == "done"
            walker = await env.login(session, gw)
            page = await walker.press("1")
            assert 2.5 < await audio_seconds(walker, page) < 3.6

    run(scenario())


def test_timeouts_reprompt_once_then_goodbye(menu_env: Callable[..., MenuEnv]) -> None:
    env = menu_env()

    async def scenario() -> None:
        async with env.up() as gw, env.session() as session:
            walker = await env.login(session, gw)
            page = await walker.wait()
            assert page.text.startswith("Press 1 to listen") and not page.hangup
            page = await walker.wait()
            assert page.hangup and page.text == "Goodbye."

    run(scenario())
