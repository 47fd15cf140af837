"""``vm2mail spool list|show|retry|discard``: look into the durable job spool and act on stuck jobs.

Nothing is ever deleted: ``discard`` moves a job (and its audio) to ``spool/discarded/``, where an
admin can still find it; ``retry`` moves a failed job back to ``new/`` and delivers it at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from vm2mail.cli.common import OK, PROBLEMS, Subparsers, age, group, load_unchecked, table
from vm2mail.cli.owner import run_as_spool_owner
from vm2mail.config import Config
from vm2mail.errors import Vm2mailError
from vm2mail.jobs.jobs import Job
from vm2mail.jobs.spool import STATES, Spool
from vm2mail.pipeline.batch import (
    DISCARDED,
    abandoned,
    batch,
    gateway_pid,
    gateway_started,
    live_claimant,
    open_spool,
    release_marker,
)

ALL_STATES = (*STATES, DISCARDED)
_JOB_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def find_job(spool: Spool, job_id: str) -> tuple[str, Path]:
    """(state, path) of ``job_id`` (``.json`` optional); Vm2mailError when it is nowhere."""
    job_id = job_id.removesuffix(".json")
    if not _JOB_ID.match(job_id):
        raise Vm2mailError(f"{job_id!r} is not a job id (see vm2mail spool list)")
    for state in ALL_STATES:
        path = spool.root / state / f"{job_id}.json"
        if path.exists():
            return state, path
    raise Vm2mailError(f"no job {job_id} in {spool.root}")


def _jobs(spool: Spool, state: str) -> list[tuple[Job, Path]]:
    found = []
    for path in sorted((spool.root / state).glob("*.json")):
        try:
            found.append((Job.from_json(path.read_bytes()), path))
        except (OSError, ValueError, TypeError, KeyError):
            continue  # half-read or foreign file: `spool show` names it when asked
    return found


_URL = re.compile(r"\bhttps?://\S*?([^/\s]+?)(?=[\s,;:]*(?:\s|$))")
_FAILED = re.compile(r"^(?:FAILED permanently|attempt \d+ failed, retry in \d+s): ")


def _summary(job: Job) -> str:
    last = job.history[-1] if job.history else ""
    return last.split(": ", 1)[1] if ": " in last and last[:4].isdigit() else last


def _reason(job: Job, width: int = 200) -> str:
    """The last event for a table cell: why it failed first, URLs cut to their last path part.

    The raw text often starts with the recording URL ("fetching https://api.twilio.com/...: HTTP 503")
    and a cut at the column width would keep the URL and lose the reason.
    """
    text = _summary(job)
    prefix = "FAILED: " if text.startswith("FAILED") else ""
    text = _URL.sub(r"\1", _FAILED.sub("", text))
    text = prefix + text
    return text if len(text) <= width else text[: width - 1] + "…"


def recent_failures(spool: Spool, limit: int = 5) -> list[dict[str, str]]:
    """The newest ``limit`` jobs in failed/, with their reason (for `status`)."""
    failed = sorted(_jobs(spool, "failed"), key=lambda item: item[1].stat().st_mtime, reverse=True)
    return [
        {
            "id": job.id,
            "mailbox": job.mailbox,
            "failed_at": datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds"),
            "reason": _summary(job),
        }
        for job, path in failed[:limit]
    ]


def cmd_list(args: argparse.Namespace) -> int:
    config = load_unchecked(args.config)
    spool = open_spool(config.server.spool_dir)
    states = (
        [args.state] if args.state else [s for s in ALL_STATES if args.all or s in ("new", "cur", "failed")]
    )
    rows = [("STATE", "JOB", "MAILBOX", "AGE", "ATTEMPTS", "LAST EVENT")]
    entries = []
    for state in states:
        for job, path in _jobs(spool, state):
            entries.append({"state": state, "job": json.loads(job.to_json())})
            # AGE is how long it has been in the spool (an imported job may be of a call long ago).
            queued = datetime.fromtimestamp(job.queued_at or path.stat().st_mtime, UTC)
            rows.append((state, job.id, job.mailbox, age(queued), str(job.attempts), _reason(job)))
    if args.json:
        print(json.dumps(entries, indent=1))
    elif len(rows) == 1:
        print(f"no jobs in {', '.join(states)}")
    else:
        print(table(rows))
    return OK


def cmd_show(args: argparse.Namespace) -> int:
    config = load_unchecked(args.config)
    state, path = find_job(open_spool(config.server.spool_dir), args.job)
    print(f"# {state}/{path.name}")
    print(path.read_text())
    return OK


def _move(src: Path, dst_dir: Path, data: bytes | None = None) -> Path:
    """Put ``src`` (or ``data`` in its place) into ``dst_dir`` durably, then remove ``src``."""
    dst_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    dst = dst_dir / src.name
    if data is None:
        os.replace(src, dst)
    else:
        tmp = dst_dir.parent / "tmp" / f"{src.stem}.{os.getpid()}.json"
        with tmp.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dst)
        src.unlink()
    fd = os.open(dst_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return dst


async def _redeliver(config: Config, job_ids: list[str]) -> int:
    status = OK
    async with batch(config) as run:
        for job_id in job_ids:
            state = await run.deliver(job_id)
            if state == "done":
                print(f"{job_id}: delivered")
            else:
                status = PROBLEMS
                print(f"{job_id}: {state}: {run.last_event(job_id)}", file=sys.stderr)
    return status


def cmd_retry(args: argparse.Namespace) -> int:
    config = load_unchecked(args.config)
    run_as_spool_owner(config)
    spool = open_spool(config.server.spool_dir)
    moved = []
    live = gateway_pid(config)
    started = gateway_started(config) if live is not None else None
    for wanted in args.jobs:
        state, path = find_job(spool, wanted)
        if state == "cur":
            # Claimed: by a process that is gone (a command killed mid-delivery, or a gateway that
            # died; then no gateway runs) the job is taken over; by a live one it is left alone.
            holder = live_claimant(spool, path.stem)
            if holder is not None:  # another admin's command, delivering it right now
                raise Vm2mailError(f"job {path.stem} is in cur/: being delivered now (pid {holder})")
            gone = abandoned(spool, path.stem, started)
            if live is not None and gone is None:
                raise Vm2mailError(f"job {path.stem} is in cur/: being delivered now (gateway pid {live})")
            print(f"{path.stem}: taking over from {f'pid {gone}' if gone else 'a stopped gateway'}, gone")
        elif state not in ("failed", "new"):
            raise Vm2mailError(f"job {path.stem} is in {state}/; only failed (or waiting) jobs are retried")
        job = Job.from_json(path.read_bytes())
        job.attempts, job.not_before, job.queued_at = 0, 0.0, time.time()
        job.history.append(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}: retried by the admin")
        _move(path, spool.dir("new"), job.to_json())
        release_marker(spool, job.id)
        print(f"{job.id}: moved from {state}/ to new/")
        moved.append(job.id)
    if args.no_deliver:
        return OK
    result: int = asyncio.run(_redeliver(config, moved))
    return result


def cmd_discard(args: argparse.Namespace) -> int:
    config = load_unchecked(args.config)
    run_as_spool_owner(config)
    spool = open_spool(config.server.spool_dir)
    state, path = find_job(spool, args.job)
    if state in ("cur", DISCARDED):
        why = "being delivered now" if state == "cur" else "already discarded"
        raise Vm2mailError(f"job {path.stem} is in {state}/: {why}")
    job = Job.from_json(path.read_bytes())
    if not args.yes:
        prompt = (
            f"Discard job {job.id} ({state}, mailbox {job.mailbox}, caller {job.call.caller or 'unknown'}, "
            f"{job.started_at})? It is kept in {spool.root / DISCARDED}. [y/N] "
        )
        print(prompt, end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            print("not discarded", file=sys.stderr)
            return PROBLEMS
    target = spool.root / DISCARDED
    if job.audio_blob and (blob := spool.dir("blobs") / job.audio_blob).exists():
        _move(blob, target)
    dst = _move(path, target)
    print(f"{job.id}: discarded (kept as {dst})")
    return OK


def register(sub: Subparsers) -> None:
    spool = group(sub, "spool", "inspect and act on the job spool")
    listing = spool.add_parser(
        "list",
        help="jobs by state with age, attempts and last event",
        description="jobs by state with age, attempts and last event",
    )
    listing.add_argument("--state", choices=ALL_STATES, help="only this state (default: new, cur, failed)")
    listing.add_argument("--all", action="store_true", help="include done and discarded jobs")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    show = spool.add_parser(
        "show", help="one job's JSON, with its history", description="one job's JSON, with its history"
    )
    show.add_argument("job", metavar="JOB", help="the job id, e.g. twilio-RE...")
    retry = spool.add_parser(
        "retry",
        help="move failed jobs back to new/ (attempts reset) and deliver them",
        description="move failed jobs back to new/ (attempts reset) and deliver them",
    )
    retry.add_argument("jobs", metavar="JOB", nargs="+", help="job ids")
    retry.add_argument(
        "--no-deliver", action="store_true", help="only requeue; a running gateway picks them up"
    )
    discard = spool.add_parser(
        "discard",
        help="move a job to spool/discarded/ (kept, never deleted)",
        description="move a job to spool/discarded/ (kept, never deleted)",
    )
    discard.add_argument("job", metavar="JOB", help="the job id")
    discard.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    for cmd, func in ((listing, cmd_list), (show, cmd_show), (retry, cmd_retry), (discard, cmd_discard)):
        cmd.add_argument("-c", "--config", required=True, help="the YAML configuration file")
        cmd.set_defaults(func=func)
