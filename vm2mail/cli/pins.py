"""``vm2mail pin reset|unlock MAILBOX``: undo a PIN changed by phone, or lift a PIN lockout, in METADATA."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from vm2mail.cli.common import OK, Subparsers, group, load_unchecked
from vm2mail.config import Config
from vm2mail.config.model import Mailbox
from vm2mail.errors import Vm2mailError
from vm2mail.logins import FAILURES_ENTRY, LOCKED_ENTRY, PIN_ENTRY, Logins
from vm2mail.mailstore.metadata import Metadata
from vm2mail.mailstore.store import ImapStore


def _mailbox(config: Config, box_id: str) -> Mailbox:
    mailbox = config.mailboxes.get(box_id)
    if mailbox is None:
        raise Vm2mailError(f"no mailbox {box_id!r} in {config.source}")
    if mailbox.is_group:
        raise Vm2mailError(f"mailbox {box_id} is a group: it has no PIN of its own (its members do)")
    return mailbox


async def _reset(config: Config, mailbox: Mailbox) -> bool:
    """Remove the phone-set PIN hash; True when there was one."""
    store = ImapStore(config.imap)
    try:
        metadata = Metadata(store)
        had = await metadata.get(mailbox, PIN_ENTRY) is not None
        await metadata.set(mailbox, PIN_ENTRY, None)
        return had
    finally:
        await store.close()


async def _unlock(config: Config, mailbox: Mailbox) -> float:
    """Clear the lockout and the failure count; the epoch seconds the lock would have lasted (0: none)."""
    store = ImapStore(config.imap)
    try:
        metadata = Metadata(store)
        until = await Logins(lambda: config, metadata).locked_until(mailbox)
        await metadata.set(mailbox, LOCKED_ENTRY, None)
        await metadata.set(mailbox, FAILURES_ENTRY, None)
    finally:
        await store.close()
    return until


def cmd_reset(args: argparse.Namespace) -> int:
    config = load_unchecked(args.config)
    mailbox = _mailbox(config, args.mailbox)
    had = asyncio.run(_reset(config, mailbox))
    source = "the pin in the configuration" if mailbox.pin_hash else "no PIN (no pin in the configuration)"
    if had:
        print(f"mailbox {mailbox.id}: the PIN set by phone is removed; {source} applies again")
    else:
        print(f"mailbox {mailbox.id}: no PIN was set by phone; {source} applies")
    return OK


def cmd_unlock(args: argparse.Namespace) -> int:
    config = load_unchecked(args.config)
    mailbox = _mailbox(config, args.mailbox)
    until = asyncio.run(_unlock(config, mailbox))
    if until:
        when = datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds")
        print(f"mailbox {mailbox.id}: unlocked (it was locked until {when}); wrong-PIN count cleared")
    else:
        print(f"mailbox {mailbox.id}: was not locked; wrong-PIN count cleared")
    return OK


def register(sub: Subparsers) -> None:
    pins = group(sub, "pin", "a mailbox's phone PIN state (kept in IMAP METADATA)")
    reset = pins.add_parser(
        "reset",
        help="forget the PIN changed by phone, so the YAML pin applies again",
        description="remove the PIN hash a user set by phone (it wins over the YAML pin) from METADATA",
    )
    unlock = pins.add_parser(
        "unlock",
        help="lift a lockout after wrong PINs and clear the failure count",
        description="clear the lockout that wrong PIN entries set, and the count of recent failures",
    )
    for cmd, func in ((reset, cmd_reset), (unlock, cmd_unlock)):
        cmd.add_argument("mailbox", metavar="MAILBOX", help="the mailbox number, e.g. 201")
        cmd.add_argument("-c", "--config", required=True, help="the YAML configuration file")
        cmd.set_defaults(func=func)
