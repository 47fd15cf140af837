"""Drives phone-menu calls exactly as Twilio does: signed form POSTs, TwiML parsed, actions followed."""

from __future__ import annotations

import asyncio
import dataclasses
import email.policy
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
from twilio.request_validator import RequestValidator
from yarl import URL

from tests.e2e.harness import Stack
from tests.fixtures.config import AUTH_TOKEN
from tests.fixtures.twilio import make_wav
from vm2mail.audio.transcode import transcode_to_mp3
from vm2mail.config import Config
from vm2mail.config.model import Mailbox
from vm2mail.crypto.pgp import Encryptor
from vm2mail.devstack.fake_twilio import new_sid
from vm2mail.jobs.jobs import VOICEMAIL, CallInfo
from vm2mail.pipeline.message import Voicemail, compose

SIGNATURE = "X-Twilio-Signature"


@dataclass
class Page:
    """One TwiML answer as the caller experiences it."""

    url: str
    status: int
    body: str
    said: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    plays: list[str] = field(default_factory=list)
    gather: ET.Element | None = None
    record: ET.Element | None = None
    dial: ET.Element | None = None
    redirect: str | None = None
    hangup: bool = False

    @property
    def text(self) -> str:
        return " ".join(self.said)


def parse_page(url: str, status: int, body: str) -> Page:
    page = Page(url=url, status=status, body=body)
    if status != 200:
        return page
    root = ET.fromstring(body)  # noqa: S314 - TwiML from the gateway under test
    assert root.tag == "Response", body

    def visit(verb: ET.Element) -> None:
        if verb.tag == "Say":
            page.said.append(verb.text or "")
            page.languages.append(verb.get("language", ""))
        elif verb.tag == "Play":
            page.plays.append((verb.text or "").strip())
        elif verb.tag == "Gather":
            page.gather = verb
            for child in verb:
                visit(child)
        elif verb.tag == "Record":
            page.record = verb
        elif verb.tag == "Dial":
            page.dial = verb
        elif verb.tag == "Redirect":
            page.redirect = (verb.text or "").strip()
        elif verb.tag == "Hangup":
            page.hangup = True

    for verb in root:
        visit(verb)
    return page


class Walker:
    """One call: ``await w.call()`` dials in, ``await w.press("1")`` answers the pending ``<Gather>``."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        config: Config,
        port: int,
        *,
        called: str,
        caller: str = "+4930123456",
        call_sid: str | None = None,
    ) -> None:
        self.session = session
        self.config = config
        self.port = port
        self.params = {
            "AccountSid": config.twilio.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call_sid or new_sid("CA"),
            "CallStatus": "in-progress",
            "Called": called,
            "Caller": caller,
            "Direction": "inbound",
            "From": caller,
            "To": called,
        }
        self.page: Page | None = None
        self.pages: list[Page] = []

    def local(self, public: str) -> str:
        base = self.config.server.public_url.rstrip("/")
        assert public.startswith(base + "/"), public
        return f"http://127.0.0.1:{self.port}{public[len(base) :]}"

    async def post(self, url: str, extra: dict[str, str] | None = None, *, signed: bool = True) -> Page:
        params = {**self.params, **(extra or {})}
        headers = {SIGNATURE: RequestValidator(AUTH_TOKEN).compute_signature(url, params)} if signed else {}
        async with self.session.post(
            URL(self.local(url), encoded=True), data=params, headers=headers
        ) as resp:
            page = parse_page(url, resp.status, await resp.text())
        self.pages.append(page)
        self.page = page
        if page.redirect and page.record is None and page.gather is None and page.dial is None:
            # Twilio reaches the <Redirect> (nothing before it waits) and follows it with the call parameters.
            return await self.post(page.redirect)
        return page

    async def call(self, path: str = "/twilio/voice") -> Page:
        return await self.post(self.config.server.public_url.rstrip("/") + path)

    async def call_mailbox(self) -> Page:
        """Call a mailbox number as an outside caller: the forward rings unanswered, then voicemail."""
        page = await self.call()
        if page.dial is not None:
            page = await self.post(page.dial.get("action") or "", {"DialCallStatus": "no-answer"})
        return page

    async def press(self, digits: str) -> Page:
        assert self.page is not None and self.page.gather is not None, self.page and self.page.body
        action = self.page.gather.get("action") or ""
        return await self.post(action, {"Digits": digits})

    async def wait(self) -> Page:
        """Let the <Gather> time out (actionOnEmptyResult posts empty Digits)."""
        return await self.press("")

    async def fetch(self, url: str) -> tuple[int, bytes, dict[str, str]]:
        async with self.session.get(self.local(url)) as resp:
            return resp.status, await resp.read(), dict(resp.headers)


def ffprobe_seconds(data: bytes) -> float:
    with tempfile.NamedTemporaryFile(suffix=".mp3") as tmp:
        tmp.write(data)
        tmp.flush()
        out = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-show_entries",
                "format=duration:stream=codec_name",
                "-of",
                "json",
                tmp.name,
            ],
            capture_output=True,
            check=True,
        ).stdout
    import json

    info: dict[str, Any] = json.loads(out)
    assert info["streams"][0]["codec_name"] == "mp3", info
    return float(info["format"]["duration"])


async def mp3(seconds: float, tmp: Path) -> Path:
    src, dst = tmp / f"tone-{seconds}.wav", tmp / f"tone-{seconds}.mp3"
    src.write_bytes(make_wav(seconds))
    await transcode_to_mp3(src, dst)
    return dst


async def voicemail_bytes(
    config: Config,
    mailbox: Mailbox,
    audio: Path,
    *,
    started: datetime,
    caller: str | None = "+4930123456",
    duration: float = 2.0,
    playback: bool = True,
) -> bytes:
    """A voicemail e-mail as the pipeline composes it (encrypted to the mailbox key, + playback key)."""
    vm = Voicemail(
        kind=VOICEMAIL,
        recipient=mailbox,
        mailbox=mailbox,
        message_id=f"<{new_sid('RE')}@{config.server.mail_domain}>",
        call=CallInfo(call_sid=new_sid("CA"), called=mailbox.numbers[0], caller=caller),
        started=started,
        duration=duration,
        mail_domain=config.server.mail_domain,
        mp3=audio,
    )
    extra = (config.gpg.playback_key,) if playback and config.gpg.playback_key else ()
    encryptor = Encryptor(config.gpg.home) if mailbox.gpg_recipients else None
    return await asyncio.to_thread(
        compose, vm, templates_dir=config.templates_dir, encryptor=encryptor, extra_recipients=extra
    )


def plain_mail(subject: str = "Lunch?") -> bytes:
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = "colleague@example.com"
    msg["To"] = "user@example.com"
    msg["Subject"] = subject
    msg["Date"] = "Mon, 23 Nov 2026 08:00:00 +0000"
    msg.set_content("Not a voicemail.")
    return msg.as_bytes()


def with_playback(stack: Stack, fingerprint: str) -> Config:
    config = stack.config
    return dataclasses.replace(config, gpg=dataclasses.replace(config.gpg, playback_key=fingerprint))
