"""Whole-path scenarios: a real Dovecot, gpg, ffmpeg, the gateway on a loopback port and a Twilio stand-in."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.fixtures.config import AUTH_TOKEN
from tests.fixtures.gpg import UserKey
from vm2mail.app import Gateway, stop_gateway
from vm2mail.config import Config
from vm2mail.devstack import keys
from vm2mail.devstack.dovecot import DevDovecot
from vm2mail.devstack.fake_twilio import FakeTwilio
from vm2mail.devstack.simulator import CallTrace, simulate_call

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"
if not SAMPLES.exists():  # a clone without shared/ beside it: the repo's own copy of one sample
    SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "demo"


def sample(name: str = "en-callback-request.wav") -> bytes:
    path = SAMPLES / name
    for fallback in (
        Path(__file__).resolve().parents[1] / "data",
        Path(__file__).resolve().parents[2] / "deploy" / "demo",
    ):
        if not path.exists():
            path = fallback / name
    return path.read_bytes()


@dataclass
class Account:
    mailbox: str
    user: str
    password: str
    key: UserKey | None


@dataclass
class Stack:
    """What a scenario needs: the config, the accounts behind its mailboxes and the Twilio stand-in."""

    config: Config
    dovecot: DevDovecot
    fake: FakeTwilio
    fake_port: int
    accounts: dict[str, Account] = field(default_factory=dict)

    @property
    def spool(self) -> Path:
        return self.config.server.spool_dir

    def job_file(self, state: str, recording_sid: str) -> Path:
        return self.spool / state / f"twilio-{recording_sid}.json"

    def job(self, state: str, recording_sid: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.job_file(state, recording_sid).read_text())
        return data

    async def wait_job(self, recording_sid: str, timeout: float = 60.0) -> str:
        """Wait until the job is done or failed; returns the state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for state in ("done", "failed"):
                if self.job_file(state, recording_sid).exists():
                    return state
            await asyncio.sleep(0.05)
        raise AssertionError(f"job for {recording_sid} not finished in {timeout}s")

    async def call(
        self,
        gateway: Gateway | int,
        *,
        caller: str | None = "+4930123456",
        to: str | None = None,
        wav: bytes | None = None,
        **kwargs: Any,
    ) -> CallTrace:
        called = to or next(iter(self.config.mailboxes.values())).numbers[0]
        return await simulate_call(
            gateway_url=f"http://127.0.0.1:{gateway if isinstance(gateway, int) else gateway.port}",
            public_url=self.config.server.public_url,
            account_sid=self.config.twilio.account_sid,
            auth_token=AUTH_TOKEN,
            fake=self.fake,
            caller=caller,
            called=called,
            wav=sample() if wav is None else wav,
            **kwargs,
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def twilio_up(stack: Stack) -> AsyncIterator[FakeTwilio]:
    await stack.fake.start("127.0.0.1", stack.fake_port)
    try:
        yield stack.fake
    finally:
        await stack.fake.stop()


@contextlib.asynccontextmanager
async def gateway_up(config: Config) -> AsyncIterator[Gateway]:
    """The gateway with its workers, on a free loopback port, for the duration of the block."""
    gateway = await Gateway.start(config, port=0)
    workers = asyncio.create_task(gateway.run_workers())
    try:
        yield gateway
    finally:
        # Stopped as `serve` stops on SIGTERM: each phase bounded, claimed jobs back in new/.
        await stop_gateway(gateway, workers)


@contextlib.asynccontextmanager
async def running(stack: Stack) -> AsyncIterator[Gateway]:
    """The Twilio stand-in and the gateway, both up for the block."""
    async with twilio_up(stack), gateway_up(stack.config) as gateway:
        yield gateway


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def decrypt(message: EmailMessage, key: UserKey) -> EmailMessage:
    """Open a PGP/MIME message the way a mail client does: part 2 decrypted with the user's secret key."""
    assert message.get_content_type() == "multipart/encrypted"
    assert message.get_param("protocol") == "application/pgp-encrypted"
    control, payload = message.iter_parts()
    assert control.get_content_type() == "application/pgp-encrypted"
    assert b"Version: 1" in control.get_payload(decode=True)
    armored = payload.get_payload(decode=True)
    assert isinstance(armored, bytes)
    plain = keys.decrypt(key.secret_home, armored)
    return parse(plain)


def audio_part(message: EmailMessage) -> bytes:
    for part in message.walk():
        if part.get_content_type() == "audio/mpeg":
            data = part.get_payload(decode=True)
            assert isinstance(data, bytes)
            return data
    raise AssertionError("no audio/mpeg part")


def ffprobe(data: bytes, tmp: Path) -> dict[str, Any]:
    path = tmp / "probe.mp3"
    path.write_bytes(data)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


async def post_recording_callback(
    stack: Stack,
    gateway_port: int,
    *,
    mailbox: str,
    recording_sid: str,
    recording_url: str,
    call_sid: str = "CA" + "ab" * 16,
    caller: str = "+4930123456",
) -> int:
    """POST a recording status callback exactly as Twilio would for a ``<Record>`` the gateway emitted."""
    import aiohttp
    from twilio.request_validator import RequestValidator

    box = stack.config.mailboxes[mailbox]
    query = urlencode({"mb": mailbox, "from": caller, "to": box.numbers[0]})
    path = f"/twilio/recording?{query}"
    params = {
        "AccountSid": stack.config.twilio.account_sid,
        "CallSid": call_sid,
        "RecordingSid": recording_sid,
        "RecordingUrl": recording_url,
        "RecordingStatus": "completed",
        "RecordingDuration": "11",
        "RecordingChannels": "1",
        "RecordingStartTime": "Mon, 23 Nov 2026 09:15:42 +0000",
        "RecordingSource": "RecordVerb",
        "ErrorCode": "0",
    }
    signature = RequestValidator(AUTH_TOKEN).compute_signature(stack.config.server.public_url + path, params)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://127.0.0.1:{gateway_port}{path}", data=params, headers={"X-Twilio-Signature": signature}
        ) as response,
    ):
        return response.status
