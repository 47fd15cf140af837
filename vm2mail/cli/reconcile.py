"""``vm2mail reconcile --since 24h``: deliver the account's recordings that never reached a mailbox."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from vm2mail.cli.common import OK, PROBLEMS, Subparsers, command, load_unchecked, table
from vm2mail.cli.owner import run_as_spool_owner
from vm2mail.config import Config
from vm2mail.errors import Vm2mailError
from vm2mail.pipeline.batch import batch
from vm2mail.pipeline.reconcile import DELIVERED, FAILED, WAITING, Outcome, parse_since, reconcile


async def _run(config: Config, since: datetime) -> list[Outcome]:
    async with batch(config) as run:
        return await reconcile(run, since)


def cmd_reconcile(args: argparse.Namespace) -> int:
    try:
        since = datetime.now(UTC) - parse_since(args.since)
    except ValueError as exc:
        raise Vm2mailError(f"--since: {exc}") from exc
    config = load_unchecked(args.config)
    run_as_spool_owner(config)
    outcomes = asyncio.run(_run(config, since))
    print(f"recordings created since {since:%Y-%m-%d %H:%M:%S} UTC: {len(outcomes)}")
    if outcomes:
        rows = [("RECORDING", "MAILBOX", "RESULT")]
        for o in outcomes:
            rows.append((o.recording_sid, o.mailbox or "-", o.result + (f": {o.detail}" if o.detail else "")))
        print(table(rows))
    delivered = sum(1 for o in outcomes if o.result == DELIVERED)
    print(f"delivered {delivered}" if delivered else "nothing to do")
    return PROBLEMS if any(o.result in (FAILED, WAITING) for o in outcomes) else OK


def register(sub: Subparsers) -> None:
    cmd = command(
        sub,
        "reconcile",
        "deliver Twilio recordings that never reached a mailbox (the gateway was down); safe to repeat",
        cmd_reconcile,
    )
    cmd.add_argument("--since", default="24h", help="how far back to look: 30m, 24h, 7d, 2w (default 24h)")
