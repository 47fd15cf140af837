"""``GET /healthz``: 503 only for what stops the instance; a mailbox's problems are 200 "degraded"."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import Callable
from typing import Any

import aiohttp

from tests.e2e.harness import Stack, free_port, gateway_up
from vm2mail.config import Config

MISSING_KEY = "0123456789ABCDEF0123456789ABCDEF01234567"


async def probe(port: int, accept: str = "text/plain") -> tuple[int, str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/healthz", headers={"Accept": accept}) as response,
    ):
        body = await response.json() if "json" in accept else None
        return response.status, "" if body is not None else await response.text(), body


def check(config: Config, before: Callable[[], None] | None = None, accept: str = "text/plain") -> Any:
    async def scenario() -> Any:
        async with gateway_up(config) as gateway:
            if before is not None:
                before()
            return await probe(gateway.port, accept)

    return asyncio.run(scenario())


def test_healthy_gateway_answers_200(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {"encrypted": True}})
    assert check(s.config)[:2] == (200, "ok\n")
    status, _, body = check(s.config, accept="application/json")
    assert (status, body) == (200, {"status": "ok", "failures": {}, "degraded": {}})


def test_imap_not_answering_is_503_naming_imap(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {}})
    config = dataclasses.replace(s.config, imap=dataclasses.replace(s.config.imap, port=free_port()))
    status, text, _ = check(config)  # nothing listens on that port
    assert status == 503
    lines = text.splitlines()
    assert len(lines) == 1 and lines[0].startswith("imap: "), text
    status, _, body = check(config, accept="application/json")
    assert status == 503 and body["status"] == "fail" and list(body["failures"]) == ["imap"]


def test_unwritable_spool_is_503_naming_the_spool(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {}})
    tmp = s.config.server.spool_dir / "tmp"

    def break_spool() -> None:  # root ignores chmod: a file where tmp/ was makes every write fail
        shutil.rmtree(tmp)
        tmp.write_text("not a directory")

    status, text, _ = check(s.config, break_spool)
    assert status == 503
    assert text.splitlines() == [f"spool: {s.config.server.spool_dir} is not writable"]


def test_one_mailboxs_unusable_key_is_degraded_not_503(stack: Callable[..., Stack]) -> None:
    """A load balancer or Docker HEALTHCHECK must not take out a gateway that serves every other mailbox."""
    s = stack({"201": {"encrypted": True}, "202": {"gpg_recipients": [MISSING_KEY]}})
    status, text, _ = check(s.config)
    assert status == 200
    degraded, line = text.splitlines()
    assert degraded == "degraded"
    assert line.startswith(f"keys: mailboxes.202.gpg_recipients[0]: key {MISSING_KEY}"), line
    status, _, body = check(s.config, accept="application/json")
    assert status == 200 and body["status"] == "degraded" and body["failures"] == {}
    assert list(body["degraded"]) == ["keys"]


def test_no_mailbox_with_a_usable_key_is_503(stack: Callable[..., Stack]) -> None:
    s = stack({"202": {"gpg_recipients": [MISSING_KEY]}})
    status, text, _ = check(s.config)
    assert status == 503
    [line] = text.splitlines()
    assert line.startswith(f"keys: mailboxes.202.gpg_recipients[0]: key {MISSING_KEY}"), line
