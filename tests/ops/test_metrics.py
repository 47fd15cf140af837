"""``GET /metrics``: Prometheus text from the gateway's registry, counting what a real call did."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import Stack, running

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(port: int) -> tuple[str, Samples]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        text = await response.text()
        samples: Samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return response.headers["Content-Type"], samples


def test_a_simulated_call_shows_in_the_counters(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {"encrypted": True, "forward_to": "+15550009999"}})

    async def scenario() -> tuple[str, Samples, Samples]:
        async with running(s) as gateway:
            _, before = await scrape(gateway.port)
            trace = await s.call(gateway)
            assert trace.recording is not None
            assert await s.wait_job(trace.recording.sid) == "done"
            content_type, after = await scrape(gateway.port)
            return content_type, before, after

    content_type, before, after = asyncio.run(scenario())
    assert content_type == CONTENT_TYPE_LATEST  # the text exposition format of the client library

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    # Counters are process-wide (other tests add to them): compare before and after this call.
    assert delta("vm2mail_calls_total", outcome="forward") == 1
    assert delta("vm2mail_recordings_total", source="twilio", kind="voicemail") == 1
    assert delta("vm2mail_deliveries_total") == 1
    assert delta("vm2mail_pipeline_seconds_count") == 1
    for stage in ("fetch", "transcode", "compose", "append"):
        assert delta("vm2mail_stage_seconds_count", stage=stage) == 1, stage
    assert after[("vm2mail_spool_depth", (("state", "new"),))] == 0
    assert after[("vm2mail_spool_depth", (("state", "failed"),))] == 0
