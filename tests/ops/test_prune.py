"""done/ and replies/ are pruned after server.spool_keep_days; jobs still owed to someone never are."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import Stack, gateway_up
from vm2mail.pipeline.prune import prune_sync

DAY = 86400


def aged(path: Path, days: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    then = time.time() - days * DAY
    os.utime(path, (then, then))
    return path


def test_old_done_jobs_and_reply_markers_go_owed_jobs_stay(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {}}, server={"spool_keep_days": 7})
    spool = s.spool
    old_done, new_done = aged(spool / "done" / "a.json", 8), aged(spool / "done" / "b.json", 6)
    old_reply = aged(spool / "replies" / "r.json", 40)
    kept = [aged(spool / state / "x.json", 400) for state in ("failed", "discarded")]

    async def scenario() -> None:
        async with gateway_up(s.config):  # the gateway prunes when it starts, then hourly
            deadline = time.monotonic() + 30
            while old_done.exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)

    asyncio.run(scenario())
    assert not old_done.exists() and not old_reply.exists()
    assert new_done.exists()
    assert all(path.exists() for path in kept)


def test_reply_markers_outlive_their_reply_addresses(stack: Callable[..., Stack]) -> None:
    """A duplicate reply must find its marker as long as the reply address is accepted."""
    s = stack(
        {"201": {}},
        server={"spool_keep_days": 7},
        smtp_ingress={"listen": "127.0.0.1:0", "reply_token_days": 30},
    )
    marker = aged(s.spool / "replies" / "r.json", 20)
    assert prune_sync(s.config) == {"done": 0, "replies": 0}
    assert marker.exists()
    os.utime(marker, (time.time() - 32 * DAY,) * 2)
    assert prune_sync(s.config) == {"done": 0, "replies": 1}
