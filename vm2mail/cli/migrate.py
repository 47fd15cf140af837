"""``vm2mail import-asterisk DIR --map 201=201``: move an Asterisk voicemail spool into vm2mail mailboxes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from vm2mail.cli.common import OK, PROBLEMS, Subparsers, command, load_unchecked
from vm2mail.cli.owner import run_as_spool_owner
from vm2mail.config import Config
from vm2mail.errors import Vm2mailError
from vm2mail.migrate.asterisk import ALREADY, IMPORTED, SKIPPED, AsteriskMessage, import_messages, scan
from vm2mail.pipeline.batch import batch

BAR = 30


def parse_map(pairs: list[str], config: Config) -> dict[str, str]:
    """``["201=201", "202=anna"]`` → {Asterisk mailbox: vm2mail mailbox id}, checked against the config."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source or not target:
            raise Vm2mailError(f"--map {pair!r}: expected ASTERISK_MAILBOX=VM2MAIL_MAILBOX, e.g. 201=201")
        if target not in config.mailboxes:
            raise Vm2mailError(f"--map {pair}: mailbox {target!r} is not in {config.source.name}")
        mapping[source] = target
    return mapping


class ProgressBar:
    """``[#####-----] 12/40 201/INBOX/msg0003 imported`` redrawn in place on stderr."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.tty = sys.stderr.isatty()

    def __call__(self, message: AsteriskMessage, outcome: str) -> None:
        self.done += 1
        filled = BAR * self.done // max(1, self.total)
        line = f"[{'#' * filled}{'-' * (BAR - filled)}] {self.done}/{self.total} {message.label} {outcome}"
        if self.tty:
            print(f"\r\033[K{line[:200]}", end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)  # a log file gets one line per message

    def close(self) -> None:
        if self.tty and self.done:
            print(file=sys.stderr)


def cmd_import(args: argparse.Namespace) -> int:
    config = load_unchecked(args.config)
    run_as_spool_owner(config)
    root = Path(args.dir)
    mapping = parse_map(args.map, config) if args.map else {}
    if not mapping:  # no --map: Asterisk mailboxes that have a vm2mail mailbox of the same id
        mapping = {
            p.name: p.name for p in sorted(root.glob("*")) if p.is_dir() and p.name in config.mailboxes
        }
        if not mapping:
            raise Vm2mailError(f"no Asterisk mailbox under {root} matches a configured mailbox; use --map")
    messages, notes = scan(root, mapping)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(
        f"{len(messages)} messages in {', '.join(f'{s}->{t}' for s, t in mapping.items())}", file=sys.stderr
    )
    bar = ProgressBar(len(messages))

    async def run() -> dict[str, int]:
        async with batch(config) as spooler:
            return await import_messages(spooler, messages, mapping, bar)

    try:
        totals = asyncio.run(run())
    finally:
        bar.close()
    summary = ", ".join(f"{n} {what}" for what, n in sorted(totals.items())) or "nothing to import"
    print(f"{summary}")
    problems = sum(n for what, n in totals.items() if what not in (IMPORTED, ALREADY, SKIPPED))
    return PROBLEMS if problems else OK


def register(sub: Subparsers) -> None:
    cmd = command(
        sub,
        "import-asterisk",
        "deliver an Asterisk voicemail spool (msgNNNN.txt + audio per folder) with original date, caller, "
        "duration and heard state; safe to interrupt and run again",
        cmd_import,
    )
    cmd.add_argument(
        "dir", metavar="DIR", help="Asterisk's context directory, e.g. /var/spool/asterisk/voicemail/default"
    )
    cmd.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="ASTERISK=VM2MAIL",
        help="Asterisk mailbox → vm2mail mailbox (repeatable); default: mailboxes with the same number",
    )
