"""The whole gateway (telephony, phone menu, media, health) under fuzzed requests: no 500, no traceback."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from urllib.parse import urlencode

import aiohttp
import pytest
from yarl import URL

from tests.e2e.harness import Stack, gateway_up
from tests.fixtures.config import AUTH_TOKEN
from tests.telephony.test_bad_input import fuzz_request, random_text
from vm2mail.pinhash import hash_pin
from vm2mail.telephony.signature import SIGNATURE_HEADER, sign

PATHS = ("/twilio/menu", "/twilio/menu?s=garbage", "/twilio/voice", "/twilio/recording?mb=201")


def test_fuzzed_requests_to_the_whole_gateway(
    stack: Callable[..., Stack], caplog: pytest.LogCaptureFixture
) -> None:
    s = stack({"201": {"pin": hash_pin("4711")}}, menu={"numbers": ["+15550007000"]})
    rng = random.Random(1515)
    seen: dict[int, int] = {}

    async def scenario() -> None:
        async with gateway_up(s.config) as gateway, aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{gateway.port}"
            for i in range(200):
                _, body, headers = fuzz_request(rng)
                path = rng.choice(PATHS)
                digits = rng.choice(("1", "#", "4711#", "", "9" * 50, random_text(rng, 5)))
                params = {
                    "AccountSid": s.config.twilio.account_sid,
                    "CallSid": "CA" + "ab" * 16,
                    "To": "+15550007000",
                    "From": "+4930123",
                    "Digits": digits,
                }
                if i % 2:  # every other one a well-signed menu step with odd digits
                    body = urlencode(params).encode()
                    headers = {
                        "Content-Type": "application/x-www-form-urlencoded",
                        SIGNATURE_HEADER: sign(AUTH_TOKEN, s.config.server.public_url + path, params),
                    }
                headers = {k: v.encode("utf-8", "replace").decode("latin-1") for k, v in headers.items()}
                async with session.post(URL(base + path, encoded=True), data=body, headers=headers) as r:
                    await r.read()
                    assert r.status < 500, (path, headers, body[:200], await r.text())
                    seen[r.status] = seen.get(r.status, 0) + 1
            for path in (
                "/media/x.mp3",
                "/media/" + "A" * 300 + ".mp3",
                "/media/%00.mp3",
                "/healthz",
                "/metrics",
            ):
                async with session.get(URL(base + path, encoded=True)) as r:
                    assert r.status < 500, (path, await r.text())

    with caplog.at_level(logging.INFO):
        asyncio.run(scenario())
    assert not [r for r in caplog.records if r.exc_info], [
        r.getMessage() for r in caplog.records if r.exc_info
    ]
    # Fuzzing reached the handlers (menu steps answered) as well as the guard's refusals.
    assert {200, 400, 403} <= set(seen), seen
