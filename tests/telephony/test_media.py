"""Media URLs and playback: signed <Play> URLs over real HTTP, playback-key decryption, WAV transcoding."""

from __future__ import annotations

import asyncio
import base64
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.e2e.harness import ffprobe
from tests.fixtures.dovecot import MailClient
from tests.fixtures.gpg import GpgKeys
from vm2mail.audio.transcode import transcode_to_mp3
from vm2mail.config import Config
from vm2mail.crypto.pgp import Encryptor
from vm2mail.devstack import keys
from vm2mail.devstack.dovecot import DevDovecot
from vm2mail.jobs.jobs import VOICEMAIL, CallInfo
from vm2mail.mailstore import ImapStore
from vm2mail.mailstore.voicemails import Voicemails
from vm2mail.pipeline.message import Voicemail, compose
from vm2mail.playback import Playback
from vm2mail.telephony.media import add_media_routes, play_url, sign

Account = Callable[..., tuple[str, str]]
Client = Callable[[str, str], MailClient]
SECONDS = 4


def tone_wav(path: Path, seconds: int = SECONDS, codec: str = "pcm_s16le") -> Path:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
         "-ar", "8000", "-ac", "1", "-c:a", codec, "-y", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def mp3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("media")
    return asyncio.run(transcode_to_mp3(tone_wav(tmp / "tone.wav"), tmp / "tone.mp3")).path


def setup(
    make_config: Callable[..., Config],
    dovecot: DevDovecot,
    imap_account: Account,
    gpg: GpgKeys | None,
    **box: Any,
) -> tuple[Config, str, str]:
    user, password = imap_account()
    cfg = make_config(
        imap={"port": dovecot.port, "security": "none"},
        gpg={"home": str(gpg.home if gpg else "/nonexistent")},
        mailboxes={"201": {"imap_user": user, "imap_password": password, **box}},
    )
    return cfg, user, password


def voicemail_bytes(
    cfg: Config, mp3: Path, encryptor: Encryptor | None, extra: tuple[str, ...] = ()
) -> bytes:
    box = cfg.mailboxes["201"]
    vm = Voicemail(
        kind=VOICEMAIL, recipient=box, mailbox=box, message_id="<RE42@vm.example.com>",
        call=CallInfo(call_sid="CA42", called="+15550002001", caller="+4930123456", caller_name=None),
        started=datetime(2026, 11, 23, 9, 30, tzinfo=UTC), duration=SECONDS, mail_domain="vm.example.com",
        mp3=mp3,
    )  # fmt: skip
    return compose(vm, templates_dir=None, encryptor=encryptor, extra_recipients=extra)


def wav_email(wav: Path) -> bytes:
    """A PBX voicemail e-mail (Asterisk style: audio/x-wav attachment)."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "asterisk@pbx.example"
    msg["To"] = "anna@example.com"
    msg["Subject"] = "[PBX]: New message 1 in mailbox 201"
    msg["X-Asterisk-VM-Caller-ID-Num"] = "+15550100"
    msg["X-Asterisk-VM-Duration"] = str(SECONDS)
    msg.set_content("Dear Anna: you have a message.\n")
    msg.add_attachment(wav.read_bytes(), maintype="audio", subtype="x-wav", filename="msg0000.wav")
    return msg.as_bytes()


@asynccontextmanager
async def serving(playback: Playback) -> AsyncIterator[str]:
    app = web.Application()
    add_media_routes(app, playback)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def get(base: str, url: str) -> tuple[int, bytes, dict[str, str]]:
    path = url.removeprefix("https://vm.example.com")
    async with aiohttp.ClientSession() as session, session.get(base + path) as response:
        return response.status, await response.read(), dict(response.headers)


def test_signed_url_streams_decrypted_mp3_and_refuses_bad_tokens(
    make_config: Callable[..., Config],
    dovecot: DevDovecot,
    imap_account: Account,
    mail_client: Client,
    gpg_keys: GpgKeys,
    mp3: Path,
    tmp_path: Path,
) -> None:
    anna = gpg_keys("Anna")
    playback_fpr = keys.make_key(gpg_keys.home, "Voicemail playback", "playback@vm.example.com")
    cfg, user, password = setup(
        make_config, dovecot, imap_account, gpg_keys, gpg_recipients=[anna.fingerprint], phone_playback=True
    )
    cfg_playback = make_config(
        gpg={"home": str(gpg_keys.home), "playback_key": playback_fpr},
        imap={"port": dovecot.port, "security": "none"},
        mailboxes={
            "201": {"imap_user": user, "imap_password": password, "gpg_recipients": [anna.fingerprint]}
        },
    )
    encryptor = Encryptor(gpg_keys.home)
    client = mail_client(user, password)
    client.create_folder("Voicemail")
    both = client.append("Voicemail", voicemail_bytes(cfg_playback, mp3, encryptor, (playback_fpr,)))
    user_only = client.append("Voicemail", voicemail_bytes(cfg, mp3, encryptor))
    box = cfg.mailboxes["201"]
    store = ImapStore(cfg.imap)
    playback = Playback(lambda: cfg, Voicemails(store))

    async def scenario() -> None:
        try:
            async with serving(playback) as base:
                url = play_url(playback.config(), box, "Voicemail", both)
                assert url.startswith("https://vm.example.com/media/") and url.endswith(".mp3")
                assert cfg.server.secret_key not in url and password not in url
                status, body, headers = await get(base, url)
                assert status == 200 and headers["Content-Type"] == "audio/mpeg"
                assert headers["Cache-Control"] == "no-store" and int(headers["Content-Length"]) == len(body)
                probe = ffprobe(body, tmp_path)
                assert probe["format"]["format_name"] == "mp3"
                assert abs(float(probe["format"]["duration"]) - SECONDS) < 0.3

                token = url.rsplit("/", 1)[1].removesuffix(".mp3")
                # Opaque: neither the mailbox, the folder nor the UID can be read from the URL.
                decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
                assert b"Voicemail" not in decoded and b'"201"' not in decoded
                middle = len(token) // 2
                tampered = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
                expired = sign(cfg.server.secret_key, "201", "Voicemail", both, 1_000_000)
                foreign = sign("another-gateway-secret", "201", "Voicemail", both, 4_000_000_000)
                # Bound to UIDVALIDITY: after the folder is recreated the UID names another message.
                validity = await playback.voicemails.locate(box, both, "Voicemail")
                assert validity is not None
                bound = play_url(playback.config(), box, "Voicemail", both, validity)
                status, _, _ = await get(base, bound)
                assert status == 200
                other = sign(cfg.server.secret_key, "201", "Voicemail", both, 4_000_000_000, validity + 1)
                for bad in (tampered, expired, foreign, other, "x", "..", token[:-4]):
                    status, body, _ = await get(base, f"/media/{bad}.mp3")
                    assert status == 404 and body == b"Not Found"

                assert await playback.audio(box, "Voicemail", user_only) is None  # no playback key on it
                status, _, _ = await get(base, play_url(playback.config(), box, "Voicemail", user_only))
                assert status == 404
                assert await playback.audio(box, "Voicemail", 999) is None  # gone
        finally:
            await store.close()

    asyncio.run(scenario())
    assert not any(m.seen for m in client.messages("Voicemail"))  # playing never marks heard


def test_wav_and_gsm_attachments_are_transcoded_and_gone_messages_play_nothing(
    make_config: Callable[..., Config],
    dovecot: DevDovecot,
    imap_account: Account,
    mail_client: Client,
    tmp_path: Path,
) -> None:
    cfg, user, password = setup(make_config, dovecot, imap_account, None)
    client = mail_client(user, password)
    client.create_folder("Voicemail")
    wav_uid = client.append("Voicemail", wav_email(tone_wav(tmp_path / "msg.wav")))
    gsm_uid = client.append("Voicemail", wav_email(tone_wav(tmp_path / "gsm.wav", codec="gsm_ms")))
    no_audio = client.append("Voicemail", b"Subject: hi\r\n\r\nno audio here\r\n")
    box = cfg.mailboxes["201"]
    store = ImapStore(cfg.imap)
    playback = Playback(lambda: cfg, Voicemails(store))

    async def scenario() -> None:
        try:
            for uid in (wav_uid, gsm_uid):
                body = await playback.audio(box, "Voicemail", uid)
                assert body is not None
                probe = ffprobe(body, tmp_path)
                assert probe["format"]["format_name"] == "mp3"
                assert abs(float(probe["format"]["duration"]) - SECONDS) < 0.3
                again = await asyncio.gather(*(playback.audio(box, "Voicemail", uid) for _ in range(2)))
                assert again == [body, body]  # cached
            assert await playback.audio(box, "Voicemail", no_audio) is None
            client.move("Voicemail", wav_uid, "Trash")
            assert await playback.audio(box, "Voicemail", wav_uid) is None  # gone, even though cached
        finally:
            await store.close()

    asyncio.run(scenario())
