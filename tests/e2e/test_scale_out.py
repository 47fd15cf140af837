"""Two gateways with their own spools, one Dovecot, one round-robin balancer: nothing lands twice.

The gateways share nothing but the IMAP server (the system of record) and the YAML (same
``secret_key``, so menu state and media URLs signed by one verify on the other).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web
from yarl import URL

from tests.e2e.harness import (
    Stack,
    free_port,
    gateway_up,
    post_recording_callback,
    sample,
    twilio_up,
)
from tests.fixtures.dovecot import MailClient
from tests.menu.conftest import MENU_NUMBER, OWNER, PIN, MenuEnv, menu_env
from tests.menu.walker import Walker
from vm2mail.app import Gateway
from vm2mail.config import Config
from vm2mail.mailstore.store import ImapStore

__all__ = ["menu_env"]  # the phone-menu fixture, reused here

HOP_BY_HOP = {"host", "connection", "content-length", "transfer-encoding", "keep-alive"}


class RoundRobin:
    """A tiny HTTP load balancer: each request goes to the next backend in turn, as a proxy would."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.served: list[int] = []
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        port = self.ports[len(self.served) % len(self.ports)]
        self.served.append(port)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        # raw_path: the request target byte for byte (Twilio's signature covers it).
        target = URL(f"http://127.0.0.1:{port}{request.raw_path}", encoded=True)
        async with self._session.request(
            request.method, target, data=await request.read(), headers=headers
        ) as response:
            body = await response.read()
            kept = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=response.status, body=body, headers=kept)


def second_instance(config: Config, root: Path) -> Config:
    """The same YAML with a spool of its own, as on a second host."""
    return dataclasses.replace(config, server=dataclasses.replace(config.server, spool_dir=root / "spool-b"))


@contextlib.asynccontextmanager
async def two_gateways(config: Config, root: Path) -> AsyncIterator[tuple[Gateway, Gateway, RoundRobin]]:
    async with gateway_up(config) as a, gateway_up(second_instance(config, root)) as b:
        balancer = RoundRobin([a.port, b.port])
        await balancer.start()
        try:
            yield a, b, balancer
        finally:
            await balancer.stop()


async def settled(spool: Path, recording_sid: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for state in ("done", "failed"):
            if (spool / state / f"twilio-{recording_sid}.json").exists():
                return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"{recording_sid} not settled in {spool}")


def voicemails(stack: Stack) -> list[str]:
    account = stack.accounts["201"]
    client = MailClient(stack.dovecot, account.user, account.password)
    if "Voicemail" not in client.list_folders():
        return []
    return [
        str(m.raw.split(b"Message-ID: ")[1].split(b"\r\n")[0], "ascii") for m in client.messages("Voicemail")
    ]


async def callback(stack: Stack, port: int, recording_sid: str, url: str) -> int:
    return await post_recording_callback(
        stack, port, mailbox="201", recording_sid=recording_sid, recording_url=url
    )


def test_the_same_callback_at_both_instances_lands_once(stack: Callable[..., Stack], tmp_path: Path) -> None:
    s = stack({"201": {"encrypted": True}})

    async def scenario() -> tuple[list[str], list[str]]:
        async with twilio_up(s), two_gateways(s.config, tmp_path) as (a, b, _):
            states = []
            # Twilio retries a callback and a balancer sends the retry elsewhere: both arrive at once.
            concurrent = s.fake.add_recording(sample(), call_sid="CA" + "1" * 32)
            url = s.fake.recording_url(concurrent)
            statuses = await asyncio.gather(
                *(
                    post_recording_callback(
                        s, port, mailbox="201", recording_sid=concurrent.sid, recording_url=url
                    )
                    for port in (a.port, b.port)
                )
            )
            assert statuses == [204, 204]
            states += [await settled(g.config.server.spool_dir, concurrent.sid) for g in (a, b)]
            # ... or the retry comes after the first instance delivered and deleted the recording.
            later = s.fake.add_recording(sample(), call_sid="CA" + "2" * 32)
            url = s.fake.recording_url(later)
            assert (
                await post_recording_callback(
                    s, a.port, mailbox="201", recording_sid=later.sid, recording_url=url
                )
                == 204
            )
            states.append(await settled(a.config.server.spool_dir, later.sid))
            assert later.sid in s.fake.deleted
            assert (
                await post_recording_callback(
                    s, b.port, mailbox="201", recording_sid=later.sid, recording_url=url
                )
                == 204
            )
            states.append(await settled(b.config.server.spool_dir, later.sid))
            return states, [concurrent.sid, later.sid]

    states, sids = asyncio.run(scenario())
    assert states == ["done"] * 4  # neither instance parks the job in failed/ or alerts anyone
    assert sorted(voicemails(s)) == sorted(f"<{sid}@vm.example.com>" for sid in sids)


def test_concurrent_appends_of_one_message_id_from_two_stores_keep_exactly_one(
    stack: Callable[..., Stack],
) -> None:
    """The race behind the first test, many times over: SEARCH (nothing) → APPEND on both sides."""
    s = stack({"201": {}})
    box = s.config.mailboxes["201"]
    when = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    async def scenario() -> list[tuple[int, int]]:
        stores = [ImapStore(s.config.imap), ImapStore(s.config.imap)]
        try:
            results = []
            for n in range(12):
                mid = f"<race-{n}@vm.example.com>"
                raw = f"Message-ID: {mid}\r\nSubject: race {n}\r\n\r\nbody\r\n".encode()
                uids = await asyncio.gather(
                    *(st.deliver(box, "Voicemail", raw, message_id=mid, internal_date=when) for st in stores)
                )
                results.append((uids[0], uids[1]))
            return results
        finally:
            for st in stores:
                await st.close()

    results = asyncio.run(scenario())
    assert all(a == b for a, b in results), results  # both report the surviving copy's UID
    ids = voicemails(s)
    assert sorted(ids) == sorted(f"<race-{n}@vm.example.com>" for n in range(12))


def test_a_menu_call_alternating_between_instances_works(
    menu_env: Callable[..., MenuEnv], tmp_path: Path
) -> None:
    env = menu_env()

    async def scenario() -> tuple[list[int], list[int], int]:
        uids = await env.deposit(2)
        async with (
            twilio_up(env.stack),
            two_gateways(env.config, tmp_path) as (_, _, balancer),
            aiohttp.ClientSession() as session,
        ):
            walker = Walker(session, env.config, balancer.port, called=MENU_NUMBER, caller=OWNER)
            await walker.call()
            page = await walker.press(PIN)
            assert "You have 2 new messages" in page.text, page.body
            first = await walker.press("1")
            assert first.text.startswith("New message 1 of 2."), first.body
            status, audio, headers = await walker.fetch(first.plays[0])
            assert status == 200 and headers["Content-Type"] == "audio/mpeg" and len(audio) > 1000
            deleted = await walker.press("7")
            assert deleted.text.startswith("Message deleted."), deleted.body
            nxt = await walker.press("6")  # the other message, served by the other instance
            assert nxt.text.startswith("New message") and nxt.plays and nxt.plays != first.plays, nxt.body
            return uids, balancer.served, len(walker.pages)

    uids, served, pages = asyncio.run(scenario())
    assert len(served) >= 6 and len(set(served)) == 2
    assert all(x != y for x, y in itertools.pairwise(served))  # every step changed instance
    remaining = [m.uid for m in env.client.messages("Voicemail")]
    assert remaining == [uids[1]]  # the first was deleted (moved to Trash) through the other instance
    assert len(env.client.messages("Trash")) == 1
    assert pages >= 5
