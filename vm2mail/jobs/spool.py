"""Durable job spool with the Maildir discipline: write to tmp/, fsync, link into new/, fsync the dir.

A front door acknowledges (HTTP 204, SMTP 250) only after ``submit`` returns, so an acknowledged job
survives kill -9 and power loss. Layout under the spool root:

``tmp/`` being written · ``new/`` ready · ``cur/`` claimed by this process · ``done/`` delivered
(kept for dedupe of repeated callbacks and audit) · ``failed/`` permanent failure, reason inside ·
``blobs/`` audio that arrived with a job (SMTP ingress).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import heapq
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from vm2mail.errors import SpoolError
from vm2mail.jobs.jobs import Job

log = logging.getLogger(__name__)

STATES = ("new", "cur", "done", "failed")
# Other processes (``vm2mail spool retry``, ``reconcile``, a PBX import) may link jobs into new/:
# an idle worker looks for them this often.
RESCAN_SECONDS = 10.0


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (a fresh file) and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """The on-disk queue. Blocking methods end in ``_sync``; their async twins run them in a thread."""

    def __init__(self, root: Path, *, rescan_seconds: float = RESCAN_SECONDS) -> None:
        self.root = Path(root)
        self.rescan_seconds = rescan_seconds
        self._ready: list[tuple[float, str]] = []  # heap of (not_before, job id) in new/
        self._queued: set[str] = set()
        self._wakeup: asyncio.Event | None = None
        self._claimed: set[str] = set()  # jobs this process moved to cur/ and has not settled yet
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop ``claim`` waits on

    # -- layout ---------------------------------------------------------------------------------
    def dir(self, state: str) -> Path:
        return self.root / state

    def path(self, state: str, job_id: str) -> Path:
        return self.root / state / f"{job_id}.json"

    def open_sync(self) -> None:
        """Create the layout and requeue jobs a killed process had claimed (cur/ → new/)."""
        try:
            for state in ("tmp", "blobs", *STATES):
                self.dir(state).mkdir(parents=True, exist_ok=True, mode=0o700)
            for stale in self.dir("tmp").iterdir():
                stale.unlink()
            for claimed in self.dir("cur").glob("*.json"):
                os.replace(claimed, self.dir("new") / claimed.name)
                log.info("requeued job %s claimed by an earlier run", claimed.stem)
            fsync_dir(self.dir("new"))
        except OSError as exc:
            raise SpoolError(f"spool {self.root} is not usable: {exc}") from exc
        for path in self.dir("new").glob("*.json"):
            try:
                job = Job.from_json(path.read_bytes())
            except (ValueError, TypeError, KeyError) as exc:
                log.error("unreadable job %s moved to failed/: %s", path.name, exc)
                os.replace(path, self.dir("failed") / path.name)
                continue
            self._enqueue(job.id, job.not_before)

    def writable(self) -> bool:
        probe = self.dir("tmp") / f".probe-{os.getpid()}"
        try:
            _write_durably(probe, b"ok")
            probe.unlink()
        except OSError:
            return False
        return True

    # -- front doors ------------------------------------------------------------------------------
    def known(self, job_id: str) -> bool:
        return any(self.path(state, job_id).exists() for state in STATES)

    def submit_sync(self, job: Job, blob: bytes | None = None, blob_suffix: str = ".bin") -> bool:
        """Make ``job`` durable. Returns False (and writes nothing) if a job with its id exists."""
        if self.known(job.id):
            return False
        try:
            if blob is not None:
                job.audio_blob = f"{job.id}{blob_suffix}"
                tmp_blob = self.dir("tmp") / job.audio_blob
                _write_durably(tmp_blob, blob)
                os.replace(tmp_blob, self.dir("blobs") / job.audio_blob)
                fsync_dir(self.dir("blobs"))
            tmp = self.dir("tmp") / f"{job.id}.{os.getpid()}.json"
            _write_durably(tmp, job.to_json())
            try:
                os.link(tmp, self.path("new", job.id))  # atomic: fails if a twin won the race
            except FileExistsError:
                return False
            finally:
                tmp.unlink()
            fsync_dir(self.dir("new"))
        except OSError as exc:
            raise SpoolError(f"cannot write job {job.id}: {exc}") from exc
        self._requeue(job.id, job.not_before)
        return True

    async def submit(self, job: Job, blob: bytes | None = None, blob_suffix: str = ".bin") -> bool:
        # submit_sync queues the job and wakes claim() itself (_requeue, from the worker thread).
        return await asyncio.to_thread(self.submit_sync, job, blob, blob_suffix)

    # -- workers ---------------------------------------------------------------------------------
    def _enqueue(self, job_id: str, not_before: float) -> None:
        if job_id not in self._queued:
            self._queued.add(job_id)
            heapq.heappush(self._ready, (not_before, job_id))

    def _claim_sync(self, job_id: str) -> Job | None:
        try:
            os.replace(self.path("new", job_id), self.path("cur", job_id))
        except FileNotFoundError:
            return None  # discarded or claimed meanwhile
        self._claimed.add(job_id)
        return Job.from_json(self.path("cur", job_id).read_bytes())

    def release_claimed_sync(self) -> list[str]:
        """Give back every job this process claimed and did not settle (shutdown): cur/ → new/.

        The job goes back as last checkpointed, its attempts unchanged, so the next start (here or
        on another instance sharing the spool) resumes it; the Message-ID search before APPEND keeps
        a delivery that was cut off half-way from landing twice. Only this process's claims are
        touched: a CLI delivery running beside the gateway keeps its own.
        """
        released = []
        for job_id in sorted(self._claimed.copy()):  # worker threads may settle jobs meanwhile
            with contextlib.suppress(FileNotFoundError):  # settled meanwhile by a worker thread
                os.replace(self.path("cur", job_id), self.path("new", job_id))
                released.append(job_id)
        self._claimed.clear()
        if released:
            fsync_dir(self.dir("new"))
        return released

    async def claim(self) -> Job:
        """Wait for the next job whose time has come and move it to cur/."""
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        while True:
            now = time.time()
            if self._ready and self._ready[0][0] <= now:
                _, job_id = heapq.heappop(self._ready)
                self._queued.discard(job_id)
                job = await asyncio.to_thread(self._claim_sync, job_id)
                if job is not None:
                    return job
                continue
            delay = min(self._ready[0][0] - now, self.rescan_seconds) if self._ready else self.rescan_seconds
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), delay)
            except TimeoutError:
                for job_id, not_before in await asyncio.to_thread(self._unqueued_sync):
                    log.info("job %s appeared in new/ (added by another process)", job_id)
                    self._enqueue(job_id, not_before)

    def _unqueued_sync(self) -> list[tuple[str, float]]:
        """Jobs in new/ this process does not know about yet, with their ``not_before``."""
        found = []
        for path in self.dir("new").glob("*.json"):
            if path.stem in self._queued:
                continue
            try:
                found.append((path.stem, Job.from_json(path.read_bytes()).not_before))
            except (OSError, ValueError, TypeError, KeyError):
                continue  # claimed meanwhile, or being replaced: the next scan sees it again
        return found

    def _rewrite(self, job: Job, state: str) -> None:
        tmp = self.dir("tmp") / f"{job.id}.{os.getpid()}.json"
        _write_durably(tmp, job.to_json())
        os.replace(tmp, self.path(state, job.id))
        fsync_dir(self.dir(state))

    def checkpoint_sync(self, job: Job) -> None:
        """Persist progress of a claimed job (e.g. one group member delivered)."""
        self._rewrite(job, "cur")

    def retry_sync(self, job: Job, delay: float, reason: str) -> None:
        self._claimed.discard(job.id)
        job.attempts += 1
        job.not_before = time.time() + delay
        job.history.append(f"{_now()}: attempt {job.attempts} failed, retry in {delay:.0f}s: {reason}")
        self._rewrite(job, "cur")
        os.replace(self.path("cur", job.id), self.path("new", job.id))
        self._requeue(job.id, job.not_before)

    def _requeue(self, job_id: str, not_before: float) -> None:
        """Queue ``job_id`` and wake ``claim``, from any thread (``_sync`` methods run in workers)."""
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is not None and loop is running:
            self._wake_with(job_id, not_before)  # on the loop's own thread
            return
        if loop is None or loop.is_closed():
            self._enqueue(job_id, not_before)  # nobody waiting yet (or any more)
            return
        # asyncio.Event and the heap belong to the loop: set from a worker thread, the waiter might never
        # be woken (Event.set is not thread-safe) and the heap could be changed under claim().
        try:
            loop.call_soon_threadsafe(self._wake_with, job_id, not_before)
        except RuntimeError:  # the loop closed meanwhile: nobody waits, a later claim() finds it
            self._enqueue(job_id, not_before)

    def _wake_with(self, job_id: str, not_before: float) -> None:
        self._enqueue(job_id, not_before)
        if self._wakeup is not None:
            self._wakeup.set()

    def finish_sync(self, job: Job, note: str = "delivered") -> None:
        self._claimed.discard(job.id)
        job.history.append(f"{_now()}: {note}")
        self._rewrite(job, "done")
        with contextlib.suppress(FileNotFoundError):
            self.path("cur", job.id).unlink()
        self._drop_blob(job)

    def fail_sync(self, job: Job, reason: str) -> None:
        self._claimed.discard(job.id)
        job.history.append(f"{_now()}: FAILED permanently: {reason}")
        self._rewrite(job, "failed")
        with contextlib.suppress(FileNotFoundError):
            self.path("cur", job.id).unlink()
        # The blob stays: an admin can retry the job once the cause is fixed.

    def _drop_blob(self, job: Job) -> None:
        if job.audio_blob:
            with contextlib.suppress(FileNotFoundError):
                (self.dir("blobs") / job.audio_blob).unlink()

    def blob_path(self, job: Job) -> Path | None:
        return self.dir("blobs") / job.audio_blob if job.audio_blob else None

    # -- admin -----------------------------------------------------------------------------------
    def jobs(self, state: str) -> Iterator[Job]:
        for path in sorted(self.dir(state).glob("*.json")):
            try:
                yield Job.from_json(path.read_bytes())
            except (OSError, ValueError, TypeError, KeyError):
                log.warning("unreadable job file %s", path)

    def depth(self) -> int:
        return sum(1 for _ in self.dir("new").glob("*.json")) + sum(1 for _ in self.dir("cur").glob("*.json"))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def is_disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)
