"""The routing decision as one pure function: switched state x office hours x outage x breaker -> route.

Nothing here reads a clock, IMAP or the network: the voice webhook gathers the inputs (cache-first,
bounded by a deadline) and asks ``decide``. The README's routing table is this function in words.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from vm2mail.config.model import Config, Mailbox, OfficeHours

NORMAL = "normal"  # ring forward_to, then voicemail
VOICEMAIL = "voicemail"  # straight to voicemail (travelling, away)
MODES = (NORMAL, VOICEMAIL)

# What the caller hears before the beep.
GREETING = "greeting"  # the mailbox's own (recorded or spoken) greeting
AWAY = "away"  # the away greeting: the owner switched the mailbox to voicemail
OUTAGE = "outage"  # the outage greeting: company outage mode
CLOSED = "closed"  # the closed greeting: outside office hours or a holiday

# Circuit breaker phases (routing/breaker.py); only CLOSED and PROBE let a call ring the PBX.
BREAKER_CLOSED, BREAKER_OPEN, BREAKER_PROBE = "closed", "open", "probe"


@dataclass(frozen=True, kw_only=True)
class Switch:
    """A switch kept in IMAP METADATA: a mailbox's mode or the company outage; ``until`` ends it by itself."""

    mode: str = NORMAL  # NORMAL/VOICEMAIL for a mailbox; VOICEMAIL means "outage on" for the outage switch
    until: float | None = None  # epoch seconds; None: until switched back
    since: float | None = None
    by: str = ""  # who switched it: cli, phone, http (for status and the audit log)
    greeting: str | None = None  # spoken away text chosen by the owner (None: the template)

    def active(self, now: float) -> bool:
        return self.mode == VOICEMAIL and (self.until is None or now < self.until)

    def to_json(self) -> str:
        data = {"mode": self.mode, "until": self.until, "since": self.since, "by": self.by}
        if self.greeting:
            data["greeting"] = self.greeting
        return json.dumps(data, separators=(",", ":"), ensure_ascii=True)

    @classmethod
    def from_json(cls, raw: str | None) -> Switch:
        """The stored switch; an absent or unreadable entry is the normal state (never blocks a call)."""
        if not raw:
            return cls()
        try:
            data: Any = json.loads(raw)
            mode = data["mode"] if data.get("mode") in MODES else NORMAL
            until = float(data["until"]) if data.get("until") is not None else None
            since = float(data["since"]) if data.get("since") is not None else None
            greeting = str(data["greeting"]) if data.get("greeting") else None
            return cls(mode=mode, until=until, since=since, by=str(data.get("by", "")), greeting=greeting)
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls()


@dataclass(frozen=True, kw_only=True)
class Route:
    """What to do with one call: whose voicemail, whether to ring ``forward_to`` first, which greeting."""

    mailbox: Mailbox
    forward: bool
    greeting: str
    reason: str  # for logs and the calls metric: forward, no_forward, away, outage, closed, pbx_down
    away_text: str | None = None


def is_open(hours: OfficeHours | None, moment: datetime) -> bool:
    """True inside the weekly hours (``moment`` in the mailbox's time zone) and not on a holiday."""
    if hours is None:
        return True
    if moment.date().isoformat() in hours.holidays:
        return False
    now = moment.time().replace(tzinfo=None)
    # 24:00 is stored as time.max, so "< end" still holds in the day's last minute.
    return any(start <= now < end for start, end in hours.weekly[moment.weekday()])


def next_change(hours: OfficeHours, moment: datetime) -> datetime | None:
    """When is_open next flips (to the minute, within two weeks), for ``status`` output."""
    state = is_open(hours, moment)
    probe = moment.replace(second=0, microsecond=0)
    for _ in range(14 * 24 * 4):
        probe += timedelta(minutes=15)
        if is_open(hours, probe) != state:
            while is_open(hours, probe - timedelta(minutes=1)) != state:
                probe -= timedelta(minutes=1)
            return probe
    return None


def outage_mailbox(config: Config, called: str, own: Mailbox | None) -> Mailbox | None:
    """The mailbox that takes calls to ``called`` during an outage, or None when it is not covered."""
    outage = config.outage
    if not outage.covers(called):
        return None
    target = outage.routes.get(called) or outage.default_mailbox
    return config.mailboxes.get(target) if target else own


def decide(
    *,
    config: Config,
    called: str,
    mailbox: Mailbox,
    switch: Switch,
    outage: Switch,
    breaker: str,
    now: datetime,
) -> Route:
    """The one routing rule, first match wins: outage, away, closed, no forward_to, PBX down, forward."""
    epoch = now.timestamp()
    if outage.active(epoch):
        target = outage_mailbox(config, called, mailbox)
        if target is not None:
            return Route(mailbox=target, forward=False, greeting=OUTAGE, reason="outage")
    if switch.active(epoch):
        return Route(mailbox=mailbox, forward=False, greeting=AWAY, reason="away", away_text=switch.greeting)
    hours = config.number_hours.get(called, mailbox.office_hours)
    if not is_open(hours, now.astimezone(mailbox.tz)):
        return Route(mailbox=mailbox, forward=False, greeting=CLOSED, reason="closed")
    if not mailbox.forward_to:
        return Route(mailbox=mailbox, forward=False, greeting=GREETING, reason="no_forward")
    if breaker == BREAKER_OPEN:
        return Route(mailbox=mailbox, forward=False, greeting=GREETING, reason="pbx_down")
    return Route(mailbox=mailbox, forward=True, greeting=GREETING, reason="forward")
