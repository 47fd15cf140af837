"""What every ``vm2mail`` command shares: loading the configuration, exit codes, tables and ages."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vm2mail.config import Config, load_config

OK, PROBLEMS, USAGE = 0, 1, 2  # exit codes: success; bad input or problems found; wrong usage

Handler = Callable[[argparse.Namespace], int]
Subparsers = Any  # argparse's _SubParsersAction is private


def load(path: str) -> Config:
    """The configuration with every pinned key checked: an unusable key is an error (file:line)."""
    from vm2mail.app import load as load_checked  # imported late: gpg and aiohttp are not needed for --help

    return load_checked(Path(path))


def load_unchecked(path: str) -> Config:
    """The configuration without the key check, for commands that report or repair key problems."""
    return load_config(Path(path))


def command(sub: Subparsers, name: str, help_text: str, func: Handler, *, config: bool = True) -> Any:
    """A subcommand with ``-c/--config`` (required unless ``config`` is False) bound to ``func``."""
    cmd = sub.add_parser(name, help=help_text, description=help_text)
    cmd.add_argument("-c", "--config", required=config, default=None, help="the YAML configuration file")
    cmd.set_defaults(func=func)
    return cmd


def group(sub: Subparsers, name: str, help_text: str) -> Any:
    """A command with its own subcommands (``spool list``, ``keys check``, ...)."""
    cmd = sub.add_parser(name, help=help_text, description=help_text)
    return cmd.add_subparsers(dest=f"{name}_command", required=True, metavar="SUBCOMMAND")


def table(rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, two spaces apart, no trailing blanks."""
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def age(moment: datetime, now: datetime | None = None) -> str:
    """``45s``, ``12m``, ``5h``, ``3d``: how long ago ``moment`` was."""
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
