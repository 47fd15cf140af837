"""The spool woken from worker threads: a retry or submit made off the loop wakes a waiting worker at once."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from tests.jobs.test_spool import make_job
from vm2mail.jobs.jobs import Job
from vm2mail.jobs.spool import Spool

RESCAN = 60.0  # without a wake-up the waiting claim() only finds the job at its next rescan
BOUND = 20.0  # generous, and far below RESCAN


async def handed_over(waiter: asyncio.Task[Job]) -> tuple[Job, float]:
    """The job the waiting claim() got, and after how many seconds (the waiter is awaited plainly: a
    timeout would itself wake the loop and hide a missing wake-up)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    job = await waiter
    return job, loop.time() - started


def test_retry_from_a_worker_thread_wakes_the_waiting_claim(tmp_path: Path) -> None:
    spool = Spool(tmp_path, rescan_seconds=RESCAN)
    spool.open_sync()
    spool.submit_sync(make_job(1))

    async def scenario() -> tuple[Job, float]:
        job = await spool.claim()
        waiter = asyncio.create_task(spool.claim())  # a worker with nothing to do, waiting
        await asyncio.sleep(0.2)
        # As the worker does via asyncio.to_thread, but on a thread the loop is not awaiting: nothing
        # else wakes the loop, so the job is handed over only if the wake-up reaches the loop itself.
        thread = threading.Thread(target=spool.retry_sync, args=(job, 0.0, "IMAP down"))
        thread.start()
        try:
            return await handed_over(waiter)
        finally:
            thread.join()

    again, waited = asyncio.run(scenario())
    assert again.id == make_job(1).id and again.attempts == 1
    assert waited < BOUND


def test_submit_from_another_thread_wakes_the_waiting_claim(tmp_path: Path) -> None:
    spool = Spool(tmp_path, rescan_seconds=RESCAN)
    spool.open_sync()

    async def scenario() -> tuple[Job, float]:
        waiter = asyncio.create_task(spool.claim())
        await asyncio.sleep(0.2)
        thread = threading.Thread(target=spool.submit_sync, args=(make_job(2),))
        thread.start()
        try:
            return await handed_over(waiter)
        finally:
            thread.join()

    job, waited = asyncio.run(scenario())
    assert job.id == make_job(2).id
    assert waited < BOUND
