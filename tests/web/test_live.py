"""An open event stream does not hold up the gateway's shutdown, and carries no caller data."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp

from tests.e2e.harness import Stack, gateway_up, twilio_up
from tests.web.client import InboxClient
from vm2mail.web.session import COOKIE


def test_event_stream_ends_when_the_gateway_stops(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {"encrypted": False}})
    account = s.accounts["201"]

    async def scenario() -> float:
        async with twilio_up(s):
            gateway_cm = gateway_up(s.config)
            gateway = await gateway_cm.__aenter__()
            client = InboxClient(f"http://127.0.0.1:{gateway.port}")
            await client.login(account.user, account.password)
            async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
                response = await http.get(
                    client.base + "/inbox/api/events", headers={"Cookie": f"{COOKIE}={client.cookie}"}
                )
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/event-stream")
                assert (await response.content.readline()).startswith(b"retry:")
                started = time.monotonic()
                await gateway_cm.__aexit__(None, None, None)
                took = time.monotonic() - started
                rest = await asyncio.wait_for(response.content.read(), 10)
                response.release()
            assert b"data:" not in rest  # nothing happened: no event was sent
            return took

    took = asyncio.run(scenario())
    print(f"gateway stopped {took:.2f} s after the request to stop, with an event stream open")
    assert took < 5.0  # the issue-15 bound for stopping; without the stream's end it would wait 60 s
