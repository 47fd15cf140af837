"""The ``menu_env`` factory: a mailbox with a PIN, its key and the playback key, on the real Dovecot."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import stack  # noqa: F401 - the e2e stack factory, reused here
from tests.e2e.harness import Stack, gateway_up, twilio_up
from tests.fixtures.dovecot import MailClient
from tests.fixtures.gpg import GpgKeys
from tests.menu.walker import Walker, mp3, voicemail_bytes, with_playback
from vm2mail.app import Gateway
from vm2mail.config import Config
from vm2mail.devstack import keys
from vm2mail.pinhash import hash_pin

PIN = "90817"
OWNER = "+15550009001"
MENU_NUMBER = "+15550007000"
T0 = datetime.fromisoformat("2026-11-20T09:15:00+00:00")


@dataclass
class MenuEnv:
    stack: Stack
    client: MailClient
    tmp: Path

    @property
    def config(self) -> Config:
        return self.stack.config

    @property
    def box(self) -> Any:
        return self.config.mailboxes["201"]

    @contextlib.asynccontextmanager
    async def up(self) -> AsyncIterator[Gateway]:
        async with twilio_up(self.stack), gateway_up(self.config) as gateway:
            yield gateway

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[aiohttp.ClientSession]:
        async with aiohttp.ClientSession() as session:
            yield session

    def walker(
        self,
        session: aiohttp.ClientSession,
        gateway: Gateway,
        *,
        caller: str = "+4930999888",
        called: str = MENU_NUMBER,
    ) -> Walker:
        return Walker(session, self.config, gateway.port, called=called, caller=caller)

    async def login(self, session: aiohttp.ClientSession, gateway: Gateway, pin: str = PIN) -> Walker:
        """Dial in from the owner's phone and enter the PIN; the walker stands at the main menu."""
        walker = self.walker(session, gateway, caller=OWNER)
        await walker.call()
        page = await walker.press(pin)
        assert "You have" in page.text or "Sie haben" in page.text, page.body
        return walker

    async def deposit(
        self,
        n: int = 1,
        *,
        start: datetime = T0,
        caller: str | None = "+4930123456",
        playback: bool = True,
        flags: str = "",
        seconds: float = 2.0,
    ) -> list[int]:
        """APPEND ``n`` voicemails as the pipeline composes them, an hour apart; their UIDs."""
        audio = await mp3(seconds, self.tmp)
        uids = []
        for i in range(n):
            raw = await voicemail_bytes(
                self.config,
                self.box,
                audio,
                started=start + timedelta(hours=i),
                caller=caller,
                playback=playback,
                duration=seconds,
            )
            uids.append(self.client.append("Voicemail", raw, flags=flags))
        return uids


@pytest.fixture
def menu_env(
    stack: Callable[..., Stack],  # noqa: F811
    gpg_keys: GpgKeys,
    mail_client: Callable[[str, str], MailClient],
    tmp_path: Path,
) -> Callable[..., MenuEnv]:
    """``menu_env(language="de-DE", menu={...})``: mailbox 201, encrypted, phone playback, PIN, owner."""

    def factory(menu: dict[str, Any] | None = None, **box: Any) -> MenuEnv:
        spec = {"encrypted": True, "phone_playback": True, "pin": hash_pin(PIN), "forward_to": OWNER, **box}
        built = stack(
            boxes={"201": spec},
            menu={"numbers": [MENU_NUMBER], "lockout_failures": 5, "lockout_minutes": 30, **(menu or {})},
        )
        fingerprint = keys.make_key(gpg_keys.home, "Gateway Playback", "playback@vm.example.com")
        built.config = with_playback(built, fingerprint)
        account = built.accounts["201"]
        client = mail_client(account.user, account.password)
        client.create_folder("Voicemail")
        return MenuEnv(stack=built, client=client, tmp=tmp_path)

    return factory
