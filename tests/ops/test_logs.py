"""Structured logs: logfmt or JSON lines, each carrying the call id and job id of what it is about."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.e2e.harness import Stack, running
from vm2mail import logsetup


@contextmanager
def captured(fmt: str) -> Iterator[io.StringIO]:
    """The gateway's formatter and context filter on a handler of their own, for the block."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logsetup.formatter(fmt))
    handler.addFilter(logsetup.ContextFilter())
    logger = logging.getLogger("vm2mail")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_json_lines_parse_and_carry_call_and_job_ids(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {"encrypted": True}})

    async def scenario() -> tuple[str, str]:
        async with running(s) as gateway:
            trace = await s.call(gateway)
            assert trace.recording is not None
            assert await s.wait_job(trace.recording.sid) == "done"
            return trace.call_sid, trace.recording.sid

    with captured("json") as stream:
        call_sid, recording_sid = asyncio.run(scenario())
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert entries and all({"ts", "level", "logger", "msg"} <= set(e) for e in entries)
    webhooks = [e for e in entries if e["logger"] == "vm2mail.telephony.webhooks"]
    assert webhooks and all(e["call_id"] == call_sid for e in webhooks)
    worker = [e for e in entries if e["logger"] == "vm2mail.pipeline.worker"]
    assert worker and all(e["job_id"] == f"twilio-{recording_sid}" for e in worker)
    assert all(e["call_id"] == call_sid for e in worker)
    # Logs from the IMAP store, called by the worker, carry the ids without repeating them.
    store = [e for e in entries if e["logger"] == "vm2mail.mailstore.store" and "appended" in e["msg"]]
    assert store and store[0]["job_id"] == f"twilio-{recording_sid}"
    assert store[0]["message_id"] == f"<{recording_sid}@vm.example.com>"


def test_logfmt_quotes_what_needs_quoting() -> None:
    with captured("text") as stream, logsetup.context(call_id="CA" + "1" * 32, job_id="twilio-RE1"):
        logging.getLogger("vm2mail.test").warning('greeting "%s" = %d', "hello world", 3)
    logging.getLogger("vm2mail.test").warning("outside")
    line = stream.getvalue().splitlines()[0]
    assert " level=warning logger=vm2mail.test call_id=CA" + "1" * 32 + " job_id=twilio-RE1 " in line
    assert line.endswith(' msg="greeting \\"hello world\\" = 3"')
    assert line.startswith("ts=") and "message_id" not in line
