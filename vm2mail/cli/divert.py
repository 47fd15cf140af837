"""``vm2mail divert`` / ``outage``: switch a mailbox to voicemail or the company into outage mode; status."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from vm2mail.cli.common import OK, Subparsers, command, load_unchecked, table
from vm2mail.config import Config
from vm2mail.mailstore.metadata import Metadata
from vm2mail.mailstore.store import ImapStore
from vm2mail.routing import control
from vm2mail.routing.decide import Switch, is_open, next_change
from vm2mail.routing.switches import Switches
from vm2mail.telephony.rest import TwilioRest

T = TypeVar("T")


def _run(config: Config, work: Callable[[Switches], Awaitable[T]]) -> T:
    async def main() -> T:
        store = ImapStore(config.imap)
        try:
            return await work(Switches(lambda: config, Metadata(store)))
        finally:
            await store.close()

    return asyncio.run(main())


def _describe(switch: Switch, tz: ZoneInfo) -> str:
    now = time.time()
    if not switch.active(now):
        expired = switch.until is not None and switch.until <= now and switch.mode != "normal"
        return "normal (ended by itself)" if expired else "normal"
    by = f", by {switch.by}" if switch.by else ""
    return f"voicemail until {control.show_until(switch.until, tz)}{by}"


def cmd_divert(args: argparse.Namespace) -> int:
    config = load_unchecked(args.config)
    if args.action == "status":
        boxes = [control.mailbox(config, args.mailbox)] if args.mailbox else list(config.mailboxes.values())
    else:
        if not args.mailbox:
            raise control.SwitchError(
                f"divert {args.action}: name the mailbox (like: divert {args.action} 201)"
            )
        boxes = [control.mailbox(config, args.mailbox)]
    box = boxes[0]
    until = control.parse_until(args.until, box.tz) if args.action == "on" else None
    if args.action in ("on", "off"):
        on = args.action == "on"
        switch = _run(
            config,
            lambda s: control.divert(s, box, on=on, until=until, by="cli", greeting=args.greeting),
        )
        print(f"mailbox {box.id}: {_describe(switch, box.tz)}")
        return OK

    async def read_all(switches: Switches) -> list[Switch]:
        return list(await asyncio.gather(*(switches.mode(b) for b in boxes)))

    switches = _run(config, read_all)
    rows = [("MAILBOX", "NAME", "CALLS", "OFFICE HOURS")]
    for b, switch in zip(boxes, switches, strict=True):
        hours = "-"
        if b.office_hours is not None:
            local = datetime.now(b.tz)
            change = next_change(b.office_hours, local)
            hours = ("open" if is_open(b.office_hours, local) else "closed") + (
                f" until {change:%a %H:%M}" if change else ""
            )
        rows.append((b.id, b.name, _describe(switch, b.tz), hours))
    print(table(rows))
    return OK


def cmd_outage(args: argparse.Namespace) -> int:
    config = load_unchecked(args.config)
    tz = ZoneInfo(config.defaults.timezone)
    if args.action == "status":
        switch = _run(config, lambda s: s.outage())
        print(f"outage mode: {'on' if switch.active(time.time()) else 'off'}")
        if switch.active(time.time()):
            print(f"  until {control.show_until(switch.until, tz)}, by {switch.by or '?'}")
        return OK
    on = args.action == "on"
    until = control.parse_until(args.until, tz) if on else None
    rest = TwilioRest(config.twilio)
    switch, changed = _run(
        config, lambda s: control.set_outage(config, s, rest, on=on, until=until, by="cli")
    )
    state = "on" if switch.active(time.time()) else "off"
    extra = f" until {control.show_until(switch.until, tz)}" if on and switch.until else ""
    print(f"outage mode {state}{extra}" + ("" if changed else " (it already was)"))
    if changed:
        targets = ", ".join(b.id for b in control.outage_targets(config)) or "-"
        print(f"owners of mailboxes {targets} notified")
    return OK


def register(sub: Subparsers) -> None:
    cmd = command(
        sub,
        "divert",
        "send a mailbox's calls straight to voicemail (on), ring forward_to again (off), or show it",
        cmd_divert,
    )
    cmd.add_argument("action", choices=("on", "off", "status"))
    cmd.add_argument("mailbox", nargs="?", help="the mailbox id (status: all when left out)")
    cmd.add_argument(
        "--until", help="switch back by itself: 90m, 8h, 3d, 2w or 2026-12-27 08:00 (local time)"
    )
    cmd.add_argument("--greeting", help="spoken away text instead of the standard away greeting")
    cmd = command(
        sub,
        "outage",
        "company outage mode: covered numbers go straight to the outage mailboxes (on/off/status)",
        cmd_outage,
    )
    cmd.add_argument("action", choices=("on", "off", "status"))
    cmd.add_argument("--until", help="end by itself: 90m, 8h, 3d, 2w or 2026-12-27 08:00 (defaults.timezone)")
