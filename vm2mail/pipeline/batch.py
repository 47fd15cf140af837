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
from vm2mail.jobs.spool import STATES, Spool, fsync_dir
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


def gateway_started(config: Config) -> float | None:
    """When the gateway serving this spool started: its pid file is written once, at start."""
    try:
        return (config.server.spool_dir / PID_FILE).stat().st_mtime
    except OSError:
        return None


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


def _marker(spool: Spool, job_id: str) -> Path:
    return spool.dir("cur") / f".{job_id}.claim"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks (/proc/PID/stat field 22): tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def _alive(pid: int, started: str) -> bool:
    """Whether the process that wrote a marker (``pid``, started at ``started``) still runs."""
    now = _start_time(pid)
    if now is not None:
        return now == started  # another process with a reused pid is not the claimant
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process (/proc hidden, e.g. ProtectProc=): assume it is the one
    return True


def _mark(spool: Spool, job_id: str) -> None:
    """Record this process as the claimant of ``job_id`` in cur/ (written whole, then renamed)."""
    marker = _marker(spool, job_id)
    tmp = marker.with_name(f"{marker.name}.{os.getpid()}")
    tmp.write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")
    os.replace(tmp, marker)


def _claimant(spool: Spool, job_id: str) -> tuple[int, str, float] | None:
    """The command that marked ``job_id`` as claimed: (pid, its start time, when it marked), or None."""
    marker = _marker(spool, job_id)
    try:
        pid_text, started = marker.read_text().split()
        return int(pid_text), started, marker.stat().st_mtime
    except (OSError, ValueError):
        return None


def abandoned(spool: Spool, job_id: str, gateway_started: float | None) -> int | None:
    """The pid of the gone command that left ``job_id`` in cur/, or None if it is not abandoned.

    Only commands leave markers; a gateway started after the marker has requeued the job since (it
    moves all of cur/ back to new/ when it starts), so such a marker is stale and the job is its own.
    """
    claim = _claimant(spool, job_id)
    if claim is None:
        return None
    pid, started, written = claim
    if gateway_started is not None and gateway_started >= written:
        return None
    return None if _alive(pid, started) else pid  # alive: still running, its job


def live_claimant(spool: Spool, job_id: str) -> int | None:
    """The pid of a running command (another admin's, at this moment) that has claimed ``job_id``."""
    claim = _claimant(spool, job_id)
    return claim[0] if claim is not None and _alive(claim[0], claim[1]) else None


def _claim(spool: Spool, job_id: str, takeover: bool) -> Job | None:
    """Move ``job_id`` from new/ to cur/ (or take it over in cur/) and read it; None when it is not there."""
    cur = spool.path("cur", job_id)
    if takeover and cur.exists():
        _mark(spool, job_id)
        return Job.from_json(cur.read_bytes())
    # The marker first: a command killed between the two steps leaves a job that is visibly its own.
    _mark(spool, job_id)
    try:
        os.replace(spool.path("new", job_id), cur)
    except FileNotFoundError:
        _marker(spool, job_id).unlink(missing_ok=True)
        return None
    return Job.from_json(cur.read_bytes())


def release_marker(spool: Spool, job_id: str) -> None:
    """Forget who claimed ``job_id`` (it has left cur/)."""
    _marker(spool, job_id).unlink(missing_ok=True)


def _settled(spool: Spool, job_id: str, *, give_back: bool) -> None:
    """After this process handled ``job_id``: drop its marker; ``give_back`` puts an unfinished job
    (interrupted, still in cur/) back into new/, where the gateway or the next command finds it."""
    marker = _marker(spool, job_id)
    try:
        ours = marker.read_text().split()[0] == str(os.getpid())
    except (OSError, IndexError):
        return
    if not ours:
        return
    if give_back:
        with contextlib.suppress(FileNotFoundError):
            os.replace(spool.path("cur", job_id), spool.path("new", job_id))
            fsync_dir(spool.dir("new"))
    marker.unlink(missing_ok=True)


@dataclass
class Batch:
    """A pipeline of this process: ``submit`` jobs, ``deliver`` them, read their end state."""

    config: Config
    spool: Spool
    pipeline: Pipeline
    # Without a live gateway a job in cur/ was left by a killed run of a command: resume it.
    requeue_claimed: bool
    # When the live gateway started (its pid file's time): older claim markers are stale.
    gateway_started: float | None = None

    def submit(self, job: Job, blob: bytes | None = None, blob_suffix: str = ".bin") -> bool:
        """Spool ``job`` unless its id is known (then nothing is written); blocking."""
        job.queued_at = time.time()
        return self.spool.submit_sync(job, blob, blob_suffix)

    async def deliver(self, job_id: str, wait: float = 30.0) -> str | None:
        """Process ``job_id`` once if it is waiting; its state afterwards (done, failed, new = retry later).

        A job a gateway has claimed is waited for (up to ``wait`` seconds); ``cur`` is returned when
        it is still claimed after that.
        """
        gone = abandoned(self.spool, job_id, self.gateway_started)
        # Without a gateway, cur/ is a gone process's, unless another command is delivering it now.
        takeover = gone is not None or (self.requeue_claimed and live_claimant(self.spool, job_id) is None)
        job = await asyncio.to_thread(_claim, self.spool, job_id, takeover)
        if job is not None:
            if job.not_before > time.time():
                job.not_before = 0.0  # the admin asked now: do not wait for the backoff
            try:
                await self.pipeline.handle(job)
            except BaseException:
                # Ctrl-C (or any end of this command) mid-delivery: the job goes back to new/ at once,
                # not left in cur/ until the gateway restarts. Delivery dedupes by Message-ID, so a
                # job interrupted after its APPEND is not delivered twice when it runs again.
                _settled(self.spool, job_id, give_back=True)
                raise
            _settled(self.spool, job_id, give_back=False)
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
        live = gateway_pid(config)
        yield Batch(
            config=config,
            spool=spool,
            pipeline=pipeline,
            requeue_claimed=live is None,
            gateway_started=gateway_started(config) if live is not None else None,
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
