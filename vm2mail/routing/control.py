"""Switching a mailbox to voicemail or the company into outage mode: checks, audit log, notifications.

Shared by the CLI (``vm2mail divert``/``outage``), the phone menu and the monitoring endpoint, so every
switch is validated the same way and leaves the same audit line (who, what, until; never a token).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from vm2mail.config.model import Config, Mailbox
from vm2mail.durations import parse_duration
from vm2mail.errors import Vm2mailError
from vm2mail.notify.deliver import Outcome, send_texts
from vm2mail.notify.texts import Texts, one_line, render
from vm2mail.routing.decide import NORMAL, VOICEMAIL, Switch
from vm2mail.routing.switches import Switches
from vm2mail.twilioapi.rest import TwilioRest

log = logging.getLogger(__name__)
audit = logging.getLogger("vm2mail.audit")

MAX_GREETING_CHARS = 400


class SwitchError(Vm2mailError):
    """A switch request is invalid (unknown mailbox, end time in the past): nothing was changed."""


def parse_until(text: str | None, tz: ZoneInfo, now: datetime | None = None) -> float | None:
    """``--until``: a duration (``90m``, ``8h``, ``3d``, ``2w``) or a local date-time (``2026-12-27 08:00``,
    ISO 8601; without an offset it is read in ``tz``); None for no end. SwitchError when in the past."""
    if text is None or not text.strip():
        return None
    now = now or datetime.now(UTC)
    duration = parse_duration(text)
    if duration is not None:
        if not duration:
            raise SwitchError(f"--until {text!r}: the end time must be in the future")
        return (now + duration).timestamp()
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SwitchError(
            f"--until {text!r} is neither a duration (like 90m, 8h, 3d) "
            "nor a date-time (like 2026-12-27 08:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    if moment <= now:
        raise SwitchError(f"--until {text!r}: the end time {moment.isoformat()} is in the past")
    return moment.timestamp()


def mailbox(config: Config, box_id: str) -> Mailbox:
    box = config.mailboxes.get(box_id)
    if box is None:
        raise SwitchError(f"unknown mailbox {box_id!r} (known: {', '.join(sorted(config.mailboxes))})")
    return box


def show_until(until: float | None, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(until, tz).strftime("%Y-%m-%d %H:%M %Z") if until else "switched back"


async def divert(
    switches: Switches,
    box: Mailbox,
    *,
    on: bool,
    until: float | None = None,
    by: str,
    greeting: str | None = None,
) -> Switch:
    """Switch ``box`` to voicemail (``on``) or back to normal; the new switch."""
    if greeting is not None and (len(greeting) > MAX_GREETING_CHARS or not greeting.isprintable()):
        raise SwitchError(
            f"the away greeting must be printable text of at most {MAX_GREETING_CHARS} characters"
        )
    if until is not None and until <= time.time():
        raise SwitchError("the end time is in the past")
    switch = Switch(
        mode=VOICEMAIL if on else NORMAL,
        until=until if on else None,
        since=time.time(),
        by=by,
        greeting=greeting if on else None,
    )
    await switches.set_mode(box, switch)
    audit.info(
        "audit: mailbox %s switched to %s by %s%s",
        box.id,
        switch.mode,
        by,
        f" until {show_until(until, box.tz)}" if on and until else "",
    )
    return switch


def outage_targets(config: Config) -> list[Mailbox]:
    """The mailboxes outage mode routes calls to (groups as their members): whose owners are told."""
    ids = [config.outage.default_mailbox, *config.outage.routes.values()]
    if not any(ids):  # no routes: every covered number keeps its own mailbox
        ids = [
            box.id
            for box in config.mailboxes.values()
            if not config.outage.numbers or set(box.numbers) & set(config.outage.numbers)
        ]
    seen: dict[str, Mailbox] = {}
    for box_id in ids:
        box = config.mailboxes.get(box_id or "")
        if box is None:
            continue
        for target in config.delivery_targets(box):
            seen.setdefault(target.id, target)
    return list(seen.values())


async def set_outage(
    config: Config,
    switches: Switches,
    rest: TwilioRest | None,
    *,
    on: bool,
    until: float | None = None,
    by: str,
) -> tuple[Switch, bool]:
    """Switch outage mode; (the new switch, whether it changed). Owners are told when it changes."""
    if until is not None and until <= time.time():
        raise SwitchError("the end time is in the past")
    before = await switches.outage()
    now = time.time()
    switch = Switch(mode=VOICEMAIL if on else NORMAL, until=until if on else None, since=now, by=by)
    await switches.set_outage(switch)
    changed = before.active(now) != on
    audit.info(
        "audit: outage mode %s by %s%s%s",
        "on" if on else "off",
        by,
        f" until {show_until(until, ZoneInfo('UTC'))}" if on and until else "",
        "" if changed else " (no change)",
    )
    if changed:
        await notify_owners(config, rest, started=on, until=until, by=by)
    return switch, changed


async def notify_owners(
    config: Config, rest: TwilioRest | None, *, started: bool, until: float | None, by: str
) -> int:
    """Tell the owners of the outage mailboxes (their notify.sms and notify.email); the number sent.

    The messages go out concurrently (each bounded by the Twilio or SMTP timeout) and all are awaited;
    a failed one is logged (by ``send_texts``, then summed up here) and not retried, never raised.
    Without a Twilio client (or relay) that channel is skipped.
    """
    sends: list[Coroutine[Any, Any, Outcome]] = []
    notices = []
    for box in outage_targets(config):  # render every text first: a broken template sends nothing
        until_local = datetime.fromtimestamp(until, box.tz) if until else None
        context: dict[str, object] = {"started": started, "mailbox": box, "until": until_local, "by": by}
        text = one_line(render("sms", box.language, "outage.j2", config.templates_dir, context))
        texts = Texts(sms=text, subject=text.split(".")[0], body=text + "\r\n")
        notices.append((box, texts, f"outage {'start' if started else 'end'} notice for {box.id}"))
    for box, texts, what in notices:
        numbers = box.notify.sms if rest is not None else ()
        addresses = box.notify.email if config.smtp_relay is not None else ()
        sends += [send_texts(config, rest, (n,), (), texts, "outage", what) for n in numbers]
        sends += [send_texts(config, rest, (), (a,), texts, "outage", what) for a in addresses]
    outcomes = await asyncio.gather(*sends)
    sent = sum(outcome.sent for outcome in outcomes)
    failed = sum(outcome.temporary + outcome.permanent for outcome in outcomes)
    if failed:
        log.error(
            "outage %s notices: sent %d, %d failed and are not retried",
            "start" if started else "end",
            sent,
            failed,
        )
    return sent
