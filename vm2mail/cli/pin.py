"""``vm2mail hash-pin``: read a PIN (never from the command line) and print its scrypt hash for the YAML."""

from __future__ import annotations

import argparse
import getpass
import sys

from vm2mail.cli.common import OK, PROBLEMS, Subparsers, command
from vm2mail.pinhash import hash_pin


def _read_pin() -> str | None:
    """From the terminal (asked twice, not echoed) or the first line of stdin; None when they differ."""
    if sys.stdin.isatty():
        first = getpass.getpass("PIN: ")
        if getpass.getpass("PIN again: ") != first:
            return None
        return first
    return sys.stdin.readline().strip()


def cmd_hash_pin(args: argparse.Namespace) -> int:
    pin = _read_pin()
    if pin is None:
        print("vm2mail: the PINs differ", file=sys.stderr)
        return PROBLEMS
    try:
        hashed = hash_pin(pin)
    except ValueError as exc:
        print(f"vm2mail: {exc}", file=sys.stderr)
        return PROBLEMS
    print(hashed)
    return OK


def register(sub: Subparsers) -> None:
    # -c is accepted for consistency and not needed: the hash is the same for every configuration.
    command(
        sub,
        "hash-pin",
        "hash a mailbox PIN for the YAML (pin: ...); reads it from the terminal twice, or from stdin",
        cmd_hash_pin,
        config=False,
    )
