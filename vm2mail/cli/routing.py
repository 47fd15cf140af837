"""Routing commands: ``divert`` and ``outage`` (switches and their status) and ``fallback-twiml``."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from twilio.twiml.voice_response import VoiceResponse

from vm2mail.cli.common import OK, PROBLEMS, Subparsers, command, load_unchecked, table
from vm2mail.config import Config
from vm2mail.mailstore.metadata import Metadata
from vm2mail.mailstore.store import ImapStore
from vm2mail.routing import control
from vm2mail.routing.decide import Switch, is_open, next_change
from vm2mail.routing.switches import Switches
from vm2mail.telephony import prompts
from vm2mail.telephony.twiml import RECORD_SILENCE_TIMEOUT
from vm2mail.twilioapi.rest import TwilioRest

T = TypeVar("T")

# <Record> without an action requests the current document again when it ends
# (https://www.twilio.com/docs/voice/twiml/record#action): for a TwiML Bin that would replay the
# greeting. The action must hang up instead; Twilio's echo Twimlet serves any TwiML from its query.
HANGUP_URL = "https://twimlets.com/echo?Twiml=%3CResponse%3E%3CHangup%2F%3E%3C%2FResponse%3E"


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
    register_fallback(sub)


def fallback_twiml(config: Config, number: str, hangup_url: str = HANGUP_URL) -> str:
    """Greeting, beep, ``<Record>``: the recording stays at Twilio until ``vm2mail reconcile`` fetches it.

    No recordingStatusCallback: the gateway is down when this runs. ``reconcile`` finds the recording
    in the account and maps it to the mailbox by the number its call dialled.
    """
    mailbox = config.mailbox_for_number(number)
    if mailbox is None:
        raise ValueError(f"{number} is not a number of any mailbox")
    greeting = prompts.mailbox_prompt(config, mailbox, prompts.GREETING, called=number, caller=None)
    response = VoiceResponse()
    response.say(greeting.text, language=greeting.language)
    response.record(
        action=hangup_url,
        method="GET",
        max_length=mailbox.max_message_seconds,
        play_beep=True,
        timeout=RECORD_SILENCE_TIMEOUT,
        finish_on_key="#",
        trim="trim-silence",
    )
    response.hangup()
    return str(response.to_xml(xml_declaration=True))


def cmd_fallback_twiml(args: argparse.Namespace) -> int:
    config = load_unchecked(args.config)
    try:
        print(fallback_twiml(config, args.number, args.hangup_url))
    except ValueError as exc:
        print(f"vm2mail: --number: {exc}", file=sys.stderr)
        return PROBLEMS
    return OK


def register_fallback(sub: Subparsers) -> None:
    cmd = command(
        sub,
        "fallback-twiml",
        "print static TwiML for a number's fallback URL (a TwiML Bin): records while the gateway is down",
        cmd_fallback_twiml,
    )
    cmd.add_argument("--number", required=True, help="the Twilio number (E.164) of the mailbox")
    cmd.add_argument(
        "--hangup-url",
        default=HANGUP_URL,
        help="TwiML that hangs up after the recording (default: Twimlet echo)",
    )
