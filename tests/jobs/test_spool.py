"""The durable spool: acknowledged jobs survive restarts, duplicates are no-ops, retries wait their turn."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from vm2mail.errors import SpoolError
from vm2mail.jobs.jobs import VOICEMAIL, CallInfo, Job
from vm2mail.jobs.spool import Spool


def make_job(n: int = 1, **overrides: object) -> Job:
    sid = f"RE{n:032x}"
    fields: dict[str, object] = {
        "id": f"twilio-{sid}",
        "kind": VOICEMAIL,
        "source": "twilio",
        "mailbox": "201",
        "message_id": f"<{sid}@vm.example.com>",
        "started_at": "2026-11-23T10:00:00+00:00",
        "call": CallInfo(
            call_sid=f"CA{n:032x}", called="+15550002001", caller="+15550001234", caller_name="Jürgen"
        ),
        "recording_sid": sid,
        "recording_url": f"https://api.twilio.com/x/Recordings/{sid}",
    }
    fields.update(overrides)
    return Job(**fields)  # type: ignore[arg-type]


def opened(root: Path) -> Spool:
    spool = Spool(root)
    spool.open_sync()
    return spool


def test_submit_writes_job_into_new_and_refuses_twins(tmp_path: Path) -> None:
    spool = opened(tmp_path)
    assert spool.submit_sync(make_job()) is True
    assert spool.submit_sync(make_job()) is False
    files = list((tmp_path / "new").iterdir())
    assert [f.name for f in files] == [f"twilio-RE{1:032x}.json"]
    data = json.loads(files[0].read_text())
    assert data["call"]["caller_name"] == "Jürgen" and data["mailbox"] == "201"
    assert not list((tmp_path / "tmp").iterdir())


def test_jobs_claimed_by_a_killed_process_are_requeued_on_open(tmp_path: Path) -> None:
    spool = opened(tmp_path)
    spool.submit_sync(make_job(1))
    spool.submit_sync(make_job(2))
    claimed = asyncio.run(spool.claim())  # now in cur/, as if the process died mid-delivery
    assert (tmp_path / "cur" / f"{claimed.id}.json").exists()
    again = opened(tmp_path)  # the restart
    ids = {asyncio.run(again.claim()).id for _ in range(2)}
    assert ids == {make_job(1).id, make_job(2).id}


def test_retry_waits_for_not_before_and_keeps_history(tmp_path: Path) -> None:
    spool = opened(tmp_path)
    spool.submit_sync(make_job(1))

    async def scenario() -> tuple[Job, float]:
        job = await spool.claim()
        spool.retry_sync(job, 0.3, "IMAP down")
        t0 = time.monotonic()
        again = await spool.claim()
        return again, time.monotonic() - t0

    job, waited = asyncio.run(scenario())
    assert waited >= 0.25
    assert job.attempts == 1 and "IMAP down" in job.history[-1]


def test_finish_and_fail_leave_records_and_dedupe_later_submits(tmp_path: Path) -> None:
    spool = opened(tmp_path)
    spool.submit_sync(make_job(1))
    spool.submit_sync(make_job(2), blob=b"RIFF....", blob_suffix=".wav")

    async def take_two() -> list[Job]:
        return [await spool.claim(), await spool.claim()]

    first, second = sorted(asyncio.run(take_two()), key=lambda j: j.id)
    assert second.audio_blob and spool.blob_path(second).read_bytes() == b"RIFF...."  # type: ignore[union-attr]
    spool.finish_sync(first)
    spool.fail_sync(second, "media 404")
    assert (tmp_path / "done" / f"{first.id}.json").exists()
    failed = json.loads((tmp_path / "failed" / f"{second.id}.json").read_text())
    assert "media 404" in failed["history"][-1]
    assert spool.blob_path(second).exists()  # type: ignore[union-attr]  # kept for a retry
    assert spool.submit_sync(make_job(1)) is False and spool.submit_sync(make_job(2)) is False
    assert spool.depth() == 0


def test_unwritable_spool_raises_spool_error(tmp_path: Path) -> None:
    spool = opened(tmp_path)
    os.chmod(tmp_path / "tmp", 0o500)
    try:
        if os.access(tmp_path / "tmp", os.W_OK):  # root ignores modes: make tmp a file instead
            os.chmod(tmp_path / "tmp", 0o700)
            (tmp_path / "tmp").rmdir()
            (tmp_path / "tmp").write_text("not a directory")
        with pytest.raises(SpoolError):
            spool.submit_sync(make_job())
        assert not spool.writable()
    finally:
        if (tmp_path / "tmp").is_dir():
            os.chmod(tmp_path / "tmp", 0o700)


def test_unsafe_job_ids_are_rejected() -> None:
    with pytest.raises(ValueError, match="unsafe job id"):
        make_job(id="../../etc/passwd")


def test_an_idle_worker_picks_up_jobs_another_process_linked_into_new(tmp_path: Path) -> None:
    """`vm2mail spool retry` or `reconcile` in another process: the running gateway still delivers."""
    gateway_spool = Spool(tmp_path, rescan_seconds=0.2)
    gateway_spool.open_sync()
    other_process = opened(tmp_path)

    async def scenario() -> str:
        claim = asyncio.create_task(gateway_spool.claim())
        await asyncio.sleep(0.3)
        assert not claim.done()
        other_process.submit_sync(make_job(7))
        job = await asyncio.wait_for(claim, 30)
        return job.id

    assert asyncio.run(scenario()) == make_job(7).id
    assert gateway_spool.path("cur", make_job(7).id).exists()
