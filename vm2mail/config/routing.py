"""Config sections for call routing: office hours, company outage mode and the PBX circuit breaker."""

from __future__ import annotations

import itertools
import re
from datetime import date, time
from typing import Any

from vm2mail.config.model import Mailbox, OfficeHours, OutageConfig, RoutingConfig
from vm2mail.config.schema import Section, e164, positive, strings
from vm2mail.config.yamlsource import Source

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])$")
# RFC 3261 §19.1: sip:/sips: URIs; Twilio dials them with <Sip> (https://www.twilio.com/docs/voice/twiml/sip).
SIP_URI = re.compile(r"^sips?:[^@\s]+@[A-Za-z0-9.\-\[\]:]+(;[^\s]*)?$")


def forward_target(value: Any) -> str | None:
    """``forward_to`` is an E.164 number or a SIP URI of the PBX."""
    if isinstance(value, str) and SIP_URI.match(value):
        return None
    if e164(value) is None:
        return None
    return (
        f"{value!r} is neither an E.164 number (like +4930123456) "
        "nor a SIP URI (like sip:201@pbx.example.com)"
    )


def _days(source: Source, path: str, key: str) -> list[int]:
    """``mon``, ``mon-fri``, ``sat,sun`` → weekday numbers (Monday 0)."""
    result: list[int] = []
    for part in key.lower().split(","):
        first, _, last = part.strip().partition("-")
        if first not in DAYS or (last and last not in DAYS):
            source.error(path, f"{key!r} is not a day or range of days (like mon-fri or sat,sun)")
            return []
        a, b = DAYS.index(first), DAYS.index(last or first)
        if b < a:
            source.error(path, f"{key!r}: the range must run forward in the week (mon-fri, not fri-mon)")
            return []
        result.extend(range(a, b + 1))
    return result


def _range(source: Source, path: str, value: str) -> tuple[time, time] | None:
    match = _RANGE.match(value.strip())
    if match is None:
        source.error(path, f"{value!r} must be HH:MM-HH:MM (like 08:00-17:00)")
        return None
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h2 == 24 and m2:
        source.error(path, f"{value!r}: 24:00 is the latest end")
        return None
    start, end = time(h1, m1), time.max if h2 == 24 else time(h2, m2)
    if end <= start:
        source.error(path, f"{value!r}: the end must be after the start (split hours over midnight in two)")
        return None
    return start, end


def office_hours(source: Source, path: str, data: Any) -> OfficeHours | None:
    """``{weekly: {mon-fri: [08:00-12:00, 13:00-17:00]}, holidays: [2026-12-24]}``; overlaps are errors."""
    if data is None:
        return None
    s = Section(source, path, data)
    # Without ``weekly`` every day is open all day: only the holidays close.
    weekly_data = s.get("weekly", dict, {"mon-sun": ["00:00-24:00"]})
    holidays = strings(source, f"{path}.holidays", s.get("holidays", list, []))
    s.done()
    days: list[list[tuple[time, time, str]]] = [[] for _ in DAYS]
    for key, ranges in weekly_data.items():
        key_path = f"{path}.weekly.{key}"
        items = [ranges] if isinstance(ranges, str) else strings(source, key_path, ranges)
        for day in _days(source, key_path, str(key)):
            for i, text in enumerate(items):
                parsed = _range(source, f"{key_path}[{i}]", text)
                if parsed is not None:
                    days[day].append((parsed[0], parsed[1], f"{key_path}[{i}]"))
    weekly: list[tuple[tuple[time, time], ...]] = []
    for day, entries in enumerate(days):
        entries.sort()
        for (_, end, _), (start, _, where) in itertools.pairwise(entries):
            if start < end:
                source.error(where, f"overlaps other hours given for {DAYS[day]}")
        weekly.append(tuple((a, b) for a, b, _ in entries))
    closed: set[str] = set()
    for i, text in enumerate(holidays):
        try:
            closed.add(date.fromisoformat(text).isoformat())
        except ValueError:
            source.error(f"{path}.holidays[{i}]", f"{text!r} is not a date like 2026-12-24")
    return OfficeHours(weekly=tuple(weekly), holidays=frozenset(closed))


def number_hours(source: Source, data: Any, mailboxes: dict[str, Mailbox]) -> dict[str, OfficeHours]:
    """Top-level ``office_hours: {"+4930555100": {weekly: ...}}`` in the zone of the number's mailbox."""
    if not isinstance(data, dict):
        source.error("office_hours", "must map numbers to office hours")
        return {}
    known = {number for box in mailboxes.values() for number in box.numbers}
    result: dict[str, OfficeHours] = {}
    for number, spec in data.items():
        path = f"office_hours.{number}"
        if problem := e164(str(number)):
            source.error(path, problem)
        elif str(number) not in known:
            source.error(path, f"{number} is not a number of any mailbox")
        hours = office_hours(source, path, spec if spec is not None else {})
        if hours is not None:
            result[str(number)] = hours
    return result


def outage(source: Source, data: Any, mailboxes: dict[str, Mailbox]) -> OutageConfig:
    s = Section(source, "outage", data)
    raw_numbers = s.get("numbers", (str, list), "all")
    routes_data = s.get("routes", dict, {})
    config_default = s.get("default_mailbox", (str, int), None)
    state = s.get("state_mailbox", (str, int), None)
    token = s.get("monitor_token", str, None)
    s.done()
    numbers: tuple[str, ...] | None = None
    if isinstance(raw_numbers, str):
        if raw_numbers != "all":
            source.error("outage.numbers", f"{raw_numbers!r} must be all or a list of numbers")
    else:
        numbers = tuple(strings(source, "outage.numbers", raw_numbers))
        for i, number in enumerate(numbers):
            if problem := e164(number):
                source.error(f"outage.numbers[{i}]", problem)
    routes: dict[str, str] = {}
    for number, box in routes_data.items():
        path = f"outage.routes.{number}"
        if problem := e164(str(number)):
            source.error(path, problem)
        if str(box) not in mailboxes:
            source.error(path, f"unknown mailbox {box!r}")
        routes[str(number)] = str(box)
    default = str(config_default) if config_default is not None else None
    if default is not None and default not in mailboxes:
        source.error("outage.default_mailbox", f"unknown mailbox {default!r}")
    state_box = str(state) if state is not None else None
    if state_box is not None and (state_box not in mailboxes or mailboxes[state_box].is_group):
        source.error("outage.state_mailbox", f"{state_box!r} is not a (non-group) mailbox")
    if token is not None and len(token) < 16:
        source.error("outage.monitor_token", "is too short: use at least 16 random characters")
    return OutageConfig(
        numbers=numbers,
        routes=routes,
        default_mailbox=default,
        state_mailbox=state_box,
        monitor_token=token,
    )


def routing(source: Source, data: Any) -> RoutingConfig:
    s = Section(source, "routing", data)
    config = RoutingConfig(
        cache_seconds=s.get("cache_seconds", float, 5.0),
        read_timeout_seconds=s.get("read_timeout_seconds", float, 1.5, positive),
        breaker_failures=s.get("breaker_failures", int, 5, positive),
        breaker_window_seconds=s.get("breaker_window_seconds", int, 300, positive),
        breaker_open_seconds=s.get("breaker_open_seconds", int, 60, positive),
    )
    s.done()
    if config.cache_seconds < 0:
        source.error("routing.cache_seconds", "must not be negative")
    return config
