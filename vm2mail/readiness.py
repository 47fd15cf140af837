"""What /healthz and check-config report beyond "can it run": METADATA where the menu needs it, stuck jobs.

The split follows what a load balancer should do with the answer: only a problem that stops the whole
instance (spool, IMAP, no mailbox deliverable) takes it out; a problem of some mailboxes (a key, the
menu's METADATA, deliveries waiting for a retry) is "degraded": reported, with details, but 200.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

from vm2mail.config import Config
from vm2mail.config.model import Mailbox
from vm2mail.errors import Vm2mailError
from vm2mail.jobs.jobs import Job
from vm2mail.mailstore.connection import ImapConnection
from vm2mail.mailstore.store import ImapStore, Pool

NO_METADATA = (
    "the IMAP server does not offer METADATA (RFC 5464), which the phone menu needs for PINs and "
    "lockouts: logins by phone fail (Dovecot: imap_metadata = yes and mail_attribute_dict)"
)
CHECK_SECONDS = 10.0  # check-config's own deadline for the IMAP check (ExecStartPre must not hang)


def menu_mailboxes(config: Config) -> list[Mailbox]:
    """Mailboxes a caller can log into by phone (a PIN is set): their PINs and lockouts live in METADATA."""
    return [box for box in config.mailboxes.values() if not box.is_group and box.pin_hash is not None]


async def metadata_problems(store: ImapStore, config: Config) -> list[tuple[str, str]]:
    """(``mailboxes.ID``, problem) for each menu mailbox when the server lacks METADATA.

    METADATA is a server setting, so one login (the first menu mailbox's) answers for all of them.
    Raises Vm2mailError when IMAP cannot be reached (the caller reports that on its own).
    """
    boxes = menu_mailboxes(config)
    if not boxes:
        return []

    async def offered(conn: ImapConnection, pool: Pool) -> bool:
        # Dovecot lists METADATA only after LOGIN (FIELD-NOTES); the pool's connections are logged in.
        return conn.has_capability("METADATA")

    if await store.run(boxes[0], offered):
        return []
    return [(f"mailboxes.{box.id}", NO_METADATA) for box in boxes]


def check_metadata_sync(config: Config) -> tuple[list[tuple[str, str]], str | None]:
    """For the CLI: (problems, None), or ([], why the check could not run) when IMAP cannot be reached."""

    async def run() -> list[tuple[str, str]]:
        store = ImapStore(config.imap)
        try:
            async with asyncio.timeout(min(CHECK_SECONDS, config.imap.timeout_seconds * 2)):
                return await metadata_problems(store, config)
        finally:
            await store.close()

    if not menu_mailboxes(config):
        return [], None
    try:
        return asyncio.run(run()), None
    except (Vm2mailError, OSError) as exc:
        return [], f"cannot check IMAP METADATA at {config.imap.host}:{config.imap.port}: {exc}"
    except TimeoutError:
        return [], f"cannot check IMAP METADATA: {config.imap.host}:{config.imap.port} did not answer"


@dataclass(frozen=True, kw_only=True)
class Stuck:
    """Jobs back in new/ after at least one failed attempt, waiting for their next retry."""

    count: int
    oldest_seconds: float  # since the oldest of them was acknowledged
    examples: list[str]  # "job id: attempts, last reason" for the oldest few


def stuck_deliveries(spool_root: Path, *, now: float | None = None, examples: int = 3) -> Stuck:
    """Read new/ (blocking: call it from a thread) for jobs that have failed at least once."""
    now = time.time() if now is None else now
    found: list[tuple[float, Job]] = []
    try:
        entries = list(os.scandir(spool_root / "new"))
    except OSError:
        entries = []
    for entry in entries:
        if not entry.name.endswith(".json"):
            continue
        try:
            job = Job.from_json(Path(entry.path).read_bytes())
        except (OSError, ValueError, TypeError, KeyError):
            continue  # claimed or replaced meanwhile; the spool reports unreadable jobs itself
        if job.attempts > 0:
            found.append((job.queued_at or entry.stat().st_mtime, job))
    found.sort(key=lambda item: item[0])
    lines = []
    for _, job in found[:examples]:
        # history lines read "<time>: attempt N failed, retry in Ds: <reason>"
        last = job.history[-1].split(": ", 1)[-1] if job.history else f"{job.attempts} failed attempts"
        lines.append(f"{job.id}: {last}")
    oldest = now - found[0][0] if found else 0.0
    return Stuck(count=len(found), oldest_seconds=max(0.0, oldest), examples=lines)
