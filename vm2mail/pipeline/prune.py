"""Prune the spool's records of finished work (done/, replies/) once they can no longer matter.

``done/`` keeps delivered jobs so a repeated Twilio callback is recognised without an IMAP search, and
as an audit trail; ``replies/`` keeps one marker per SMS reply so a resent e-mail is not texted twice.
Both only grow. Jobs still owed to someone (new/, cur/, failed/, discarded/) are never touched.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from vm2mail.config import Config

log = logging.getLogger(__name__)

DAY = 86400.0
PRUNE_EVERY_SECONDS = 3600.0


def _prune_dir(directory: Path, cutoff: float) -> int:
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            continue  # removed meanwhile (another instance prunes the same spool)
    return removed


def prune_sync(config: Config, *, now: float | None = None) -> dict[str, int]:
    """Delete done/ jobs and reply markers older than ``server.spool_keep_days``; counts by directory.

    A reply marker is kept at least as long as its reply address is valid
    (``smtp_ingress.reply_token_days``): until then a duplicate reply must still find it.
    """
    now = time.time() if now is None else now
    root = config.server.spool_dir
    keep = config.server.spool_keep_days
    token_days = config.smtp_ingress.reply_token_days if config.smtp_ingress is not None else 0
    return {
        "done": _prune_dir(root / "done", now - keep * DAY),
        "replies": _prune_dir(root / "replies", now - max(keep, token_days + 1) * DAY),
    }


async def run_pruner(config: Callable[[], Config], every: float = PRUNE_EVERY_SECONDS) -> None:
    """Prune at start and then every ``every`` seconds, for the gateway's lifetime."""
    while True:
        try:
            removed = await asyncio.to_thread(prune_sync, config())
        except OSError as exc:
            log.warning("cannot prune the spool: %s", exc)
        else:
            if any(removed.values()):
                log.info("pruned the spool: %s", ", ".join(f"{n} from {d}/" for d, n in removed.items() if n))
        await asyncio.sleep(every)
