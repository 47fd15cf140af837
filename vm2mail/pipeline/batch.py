"""Run the delivery pipeline inside a one-shot admin command over the jobs it spooled itself.

A running gateway learns of new spool files only at its start, so commands that add jobs (reconcile,
import-asterisk, ``spool retry``) deliver them themselves. Claiming is a rename (Maildir discipline),
so a gateway and a command never process the same job at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from vm2mail.config.model import Config
from vm2mail.errors import SpoolError
from vm2mail.jobs.jobs import Job
from vm2mail.jobs.spool import STATES, Spool
from vm2mail.mailstore.store import ImapStore
from vm2mail.pipeline.worker import AdminAlert, Pipeline
from vm2mail.twilioapi.rest import TwilioRest

PID_FILE = "vm2mail.pid"  # written by `vm2mail serve` into the spool directory
DISCARDED = "discarded"  # `vm2mail spool discard` keeps jobs here; they are never brought back


def gateway_pid(config: Config) -> int | None:
    """The pid of the gateway serving this spool, if its pid file names a live process."""
    try:
        pid = int((config.server.spool_dir / PID_FILE).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def job_state(spool: Spool, job_id: str) -> str | None:
    """Which spool directory holds ``job_id`` (new, cur, done, failed, discarded), or None."""
    for state in (*STATES, DISCARDED):
        if spool.path(state, job_id).exists():
            return state
    return None


def open_spool(root: Path) -> Spool:
    """The spool, its directories created; unlike ``Spool.open_sync`` nothing is requeued."""
    spool = Spool(root)
    try:
        for state in ("tmp", "blobs", *STATES):
            spool.dir(state).mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise SpoolError(f"spool {root} is not usable: {exc}") from exc
    return spool


def _claim(spool: Spool, job_id: str, requeue_claimed: bool) -> Job | None:
    """Move ``job_id`` from new/ (or from cur/, left by a killed command) to cur/ and read it."""
    if requeue_claimed and spool.path("cur", job_id).exists():
        return Job.from_json(spool.path("cur", job_id).read_bytes())
    try:
        os.replace(spool.path("new", job_id), spool.path("cur", job_id))
    except FileNotFoundError:
        return None
    return Job.from_json(spool.path("cur", job_id).read_bytes())


@dataclass
class Batch:
    """A pipeline of this process: ``submit`` jobs, ``deliver`` them, read their end state."""

    config: Config
    spool: Spool
    pipeline: Pipeline
    # Without a live gateway a job in cur/ was left by a killed run of a command: resume it.
    requeue_claimed: bool

    def submit(self, job: Job, blob: bytes | None = None, blob_suffix: str = ".bin") -> bool:
        """Spool ``job`` unless its id is known (then nothing is written); blocking."""
        job.queued_at = time.time()
        return self.spool.submit_sync(job, blob, blob_suffix)

    async def deliver(self, job_id: str, wait: float = 30.0) -> str | None:
        """Process ``job_id`` once if it is waiting; its state afterwards (done, failed, new = retry later).

        A job a gateway has claimed is waited for (up to ``wait`` seconds); ``cur`` is returned when
        it is still claimed after that.
        """
        job = await asyncio.to_thread(_claim, self.spool, job_id, self.requeue_claimed)
        if job is not None:
            if job.not_before > time.time():
                job.not_before = 0.0  # the admin asked now: do not wait for the backoff
            await self.pipeline.handle(job)
        deadline = time.monotonic() + wait
        state = job_state(self.spool, job_id)
        while state == "cur" and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            state = job_state(self.spool, job_id)
        return state

    def last_event(self, job_id: str) -> str:
        state = job_state(self.spool, job_id)
        if state is None:
            return "not in the spool"
        job = Job.from_json(self.spool.path(state, job_id).read_bytes())
        return job.history[-1] if job.history else state


@contextlib.asynccontextmanager
async def batch(config: Config, alert_admin: AdminAlert | None = None) -> AsyncIterator[Batch]:
    """A Batch over the configured spool, IMAP store and Twilio account, closed at the end."""
    spool = await asyncio.to_thread(open_spool, config.server.spool_dir)
    store = ImapStore(config.imap)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300, sock_connect=10))
    try:
        rest = TwilioRest(config.twilio)
        pipeline = Pipeline(
            config=lambda: config,
            spool=spool,
            store=store,
            http=http,
            delete_recording=rest.delete_recording,
            alert_admin=alert_admin,
        )
        yield Batch(
            config=config, spool=spool, pipeline=pipeline, requeue_claimed=gateway_pid(config) is None
        )
    finally:
        await store.close()
        await http.close()


async def run_all(items: Iterable[str], work: Callable[[str], Awaitable[None]], concurrency: int) -> None:
    """Run ``work`` over ``items`` with at most ``concurrency`` at a time, in order of ``items``."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)

    async def worker() -> None:
        while not queue.empty():
            await work(queue.get_nowait())

    async with asyncio.TaskGroup() as group:
        for _ in range(max(1, concurrency)):
            group.create_task(worker())
