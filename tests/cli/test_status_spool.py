"""``vm2mail status`` and ``vm2mail spool ...`` against a real Dovecot and a real spool directory."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tests.cli.conftest import cli
from tests.e2e.harness import Stack, running
from tests.e2e.test_voicemail import messages
from tests.fixtures.dovecot import MailClient
from tests.fixtures.twilio import make_wav
from vm2mail.jobs.jobs import VOICEMAIL, CallInfo, Job
from vm2mail.jobs.spool import Spool


def _failed_job(spool_dir: Path, n: int, reason: str = "IMAP said NO") -> Job:
    """A voicemail with its audio in the spool, parked in failed/ as the worker does it."""
    spool = Spool(spool_dir)
    spool.open_sync()
    job = Job(
        id=f"smtp-test{n}",
        kind=VOICEMAIL,
        source="smtp",
        mailbox="201",
        message_id=f"<test{n}@vm.example.com>",
        call=CallInfo(call_sid=f"smtp-test{n}", called="+15550002001", caller=f"+49301234{n}"),
        started_at=datetime(2026, 11, 20, 10, n, tzinfo=UTC).isoformat(),
    )
    assert spool.submit_sync(job, make_wav(2.0), ".wav")
    claimed = Job.from_json(spool.path("new", job.id).read_bytes())
    spool.path("new", job.id).rename(spool.path("cur", job.id))
    spool.fail_sync(claimed, reason)
    return claimed


def test_status_counts_last_voicemail_keys_and_failures(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {}, "202": {"encrypted": True, "name": "Bob"}})
    config = str(s.config.source)

    async def calls() -> None:
        async with running(s) as gateway:
            for caller in ("+4930111", "+4930222", "+4930333"):
                trace = await s.call(gateway, caller=caller)
                assert trace.recording is not None
                assert await s.wait_job(trace.recording.sid) == "done"
                await asyncio.sleep(1.1)  # distinct Date headers: "last" is well defined

    asyncio.run(calls())
    anna = s.accounts["201"]
    client = MailClient(s.dovecot, anna.user, anna.password)
    first, second, _third = sorted(client.messages("Voicemail"), key=lambda m: m.uid)
    client.set_flags("Voicemail", first.uid, "\\Seen")
    client.set_flags("Voicemail", second.uid, "\\Seen", "\\Flagged")
    _failed_job(s.spool, 1, "mailbox 201: IMAP APPEND refused: over quota")

    result = cli("status", "-c", config, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    boxes = {b["id"]: b for b in report["mailboxes"]}
    assert boxes["201"]["counts"] == {"new": 1, "heard": 1, "saved": 1, "total": 3}
    assert boxes["201"]["last"]["caller"] == "+4930333"
    assert boxes["201"]["key_state"] is None  # no keys: plain mailbox
    assert boxes["202"]["counts"] == {"new": 0, "heard": 0, "saved": 0, "total": 0}
    assert boxes["202"]["key_state"] == "ok" and boxes["202"]["keys"][0]["usable"] is True
    assert report["spool"]["done"] == 3 and report["spool"]["failed"] == 1
    [failure] = report["recent_failures"]
    assert failure["id"] == "smtp-test1" and "over quota" in failure["reason"]

    text = cli("status", "-c", config)
    assert text.returncode == 0, text.stderr
    row = next(line for line in text.stdout.splitlines() if line.startswith("201"))
    assert row.split()[3:7] == ["1", "1", "1", "3"] and "+4930333" in row
    assert "failed 1" in text.stdout and "over quota" in text.stdout


def test_status_exit_1_when_imap_is_down_or_a_key_unusable(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {"gpg_recipients": ["AAAABBBBCCCCDDDDEEEEFFFF0000111122223333"]}})
    result = cli("status", "-c", str(s.config.source))
    assert result.returncode == 1
    assert "UNUSABLE: not in keyring" in result.stdout


def test_spool_list_show_retry_discard(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {}})
    config = str(s.config.source)
    failed = _failed_job(s.spool, 1)
    doomed = _failed_job(s.spool, 2, "audio is corrupt")

    listing = cli("spool", "list", "-c", config)
    assert listing.returncode == 0, listing.stderr
    rows = [line.split() for line in listing.stdout.splitlines()[1:]]
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [
        ("failed", "smtp-test1", "201", "0"),
        ("failed", "smtp-test2", "201", "0"),
    ]
    assert "audio is corrupt" in listing.stdout

    show = cli("spool", "show", "-c", config, "smtp-test2")
    assert show.returncode == 0
    assert json.loads(show.stdout.split("\n", 1)[1])["history"][-1].endswith("audio is corrupt")
    assert cli("spool", "show", "-c", config, "no-such-job").returncode == 1
    assert cli("spool", "show", "-c", config, "../../etc/passwd").returncode == 1

    # discard: asks first; "no" (or no answer) keeps the job where it is
    refused = cli("spool", "discard", "-c", config, doomed.id, input="n\n")
    assert refused.returncode == 1 and "Discard job smtp-test2" in refused.stderr
    assert (s.spool / "failed" / "smtp-test2.json").exists()
    discarded = cli("spool", "discard", "-c", config, doomed.id, input="y\n")
    assert discarded.returncode == 0, discarded.stderr
    assert not (s.spool / "failed" / "smtp-test2.json").exists()
    kept = s.spool / "discarded"
    assert (kept / "smtp-test2.json").exists() and (kept / "smtp-test2.wav").exists()  # moved, not deleted
    assert cli("spool", "discard", "-c", config, doomed.id, "--yes").returncode == 1  # already discarded

    # retry: back to new/ with attempts reset, delivered at once into the real mailbox
    retried = cli("spool", "retry", "-c", config, failed.id)
    assert retried.returncode == 0, retried.stderr
    assert "smtp-test1: delivered" in retried.stdout
    job = json.loads((s.spool / "done" / "smtp-test1.json").read_text())
    assert job["attempts"] == 0 and any("retried by the admin" in h for h in job["history"])
    [landed] = messages(s, "201")
    assert b"<test1@vm.example.com>" in landed.raw
    assert cli("spool", "retry", "-c", config, failed.id).returncode == 1  # done jobs are not retried
    assert "no jobs" in cli("spool", "list", "-c", config).stdout
    assert "smtp-test1" in cli("spool", "list", "-c", config, "--all").stdout


def test_spool_retry_no_deliver_only_requeues(tmp_path: Path, make_config: Callable[..., object]) -> None:
    config = make_config()
    spool_dir = config.server.spool_dir  # type: ignore[attr-defined]
    job = _failed_job(spool_dir, 3)
    before = time.time()
    result = cli("spool", "retry", "-c", str(config.source), job.id, "--no-deliver")  # type: ignore[attr-defined]
    assert result.returncode == 0, result.stderr
    requeued = json.loads((spool_dir / "new" / f"{job.id}.json").read_text())
    assert requeued["attempts"] == 0 and requeued["queued_at"] >= before
    assert not (spool_dir / "failed" / f"{job.id}.json").exists()


def test_spool_retry_leaves_a_job_another_live_command_is_delivering(
    tmp_path: Path, make_config: Callable[..., object]
) -> None:
    """No gateway runs, but another admin's command (here: this test process) has the job in cur/:
    a second ``spool retry`` must not take it over, or both would deliver it."""
    config = make_config()
    spool_dir = config.server.spool_dir  # type: ignore[attr-defined]
    job = _failed_job(spool_dir, 4)
    claimed = spool_dir / "cur" / f"{job.id}.json"
    (spool_dir / "failed" / f"{job.id}.json").rename(claimed)
    started = Path("/proc/self/stat").read_text().rsplit(")", 1)[-1].split()[19]
    marker = spool_dir / "cur" / f".{job.id}.claim"
    marker.write_text(f"{os.getpid()} {started}\n")  # what a command writes when it claims a job
    result = cli("spool", "retry", "-c", str(config.source), job.id, "--no-deliver")  # type: ignore[attr-defined]
    assert result.returncode != 0
    assert f"being delivered now (pid {os.getpid()})" in result.stderr
    assert claimed.exists() and marker.exists()
    assert not (spool_dir / "new" / f"{job.id}.json").exists()
