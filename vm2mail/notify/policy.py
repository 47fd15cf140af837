"""When a voicemail is notified or reminded: quiet hours, reminder schedule and group recipients."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from vm2mail.config.model import Config, Mailbox, NotifyConfig
from vm2mail.mailstore.voicemails import DELETED, NOTIFIED, REMINDED, SEEN, Entry

# Turning notifications on (or a gateway that was down for long) must not flood anyone with old news:
# voicemails older than this never get a first notification.
MAX_AGE = timedelta(days=1)
NOTIFIED_KINDS = ("voicemail", "asterisk")  # missed calls (no message) get no SMS and no reminder
_REMINDED = re.compile(re.escape(REMINDED) + r"(\d+)$", re.IGNORECASE)

NOTIFY = "notify"
REMINDER = "reminder"


@dataclass(frozen=True, kw_only=True)
class Plan:
    """Who hears about the voicemails in one member's folder, and on which schedule.

    ``settings`` gives quiet hours and reminders; ``tz`` is the folder owner's time zone.
    """

    sms: tuple[str, ...]
    email: tuple[str, ...]
    settings: NotifyConfig
    tz: ZoneInfo
    language: str

    @property
    def empty(self) -> bool:
        return not (self.sms or self.email)


@dataclass(frozen=True, kw_only=True)
class Action:
    """What is due for one voicemail now: the notification or the ``number``-th reminder.

    ``flags`` are the keywords to claim before sending: a late notification also claims the
    reminders already due, so nobody gets a notification and a reminder in the same minute.
    """

    kind: str  # NOTIFY | REMINDER
    number: int  # 0 for the notification, k for the k-th reminder
    flags: tuple[str, ...]


def reminders_sent(flags: frozenset[str]) -> int:
    """The highest k among the ``$Vm2mailReminded<k>`` keywords (0 when none)."""
    found = [int(m.group(1)) for flag in flags if (m := _REMINDED.match(flag))]
    return max(found, default=0)


def reminder_flag(k: int) -> str:
    return f"{REMINDED}{k}"


def quiet_until(now: datetime, quiet: tuple[time, time] | None, tz: ZoneInfo) -> datetime | None:
    """The end of the quiet period ``now`` falls in (aware), or None outside quiet hours.

    ``quiet`` is (start, end) wall-clock time in ``tz``; start > end spans midnight ("22:00-07:00").
    """
    if quiet is None:
        return None
    start, end = quiet
    if start == end:
        return None
    local = now.astimezone(tz)
    clock = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= clock < end
        end_day = local.date()
    else:
        inside = clock >= start or clock < end
        end_day = local.date() + timedelta(days=1) if clock >= start else local.date()
    if not inside:
        return None
    # Wall-clock end in the zone (a DST change inside the quiet hours is absorbed by zoneinfo).
    return datetime.combine(end_day, end, tzinfo=tz)


def reminders_due(entry: Entry, settings: NotifyConfig, now: datetime) -> int:
    """How many reminders are due by ``now``: the k-th after k × reminder_minutes, at most reminder_max."""
    if settings.reminder_minutes is None or settings.reminder_max <= 0:
        return 0
    elapsed = now - entry.date
    step = timedelta(minutes=settings.reminder_minutes)
    if elapsed < step:
        return 0
    return min(settings.reminder_max, int(elapsed / step))


def decide(entry: Entry, plan: Plan, now: datetime) -> Action | None:
    """The action due for ``entry`` at ``now``, or None (nothing due, quiet hours, heard, too old)."""
    if plan.empty or entry.kind not in NOTIFIED_KINDS:
        return None
    flags = entry.flags
    if SEEN in flags or DELETED in flags:
        return None  # heard (anywhere) or being deleted: no notification and no more reminders
    if quiet_until(now, plan.settings.quiet_hours, plan.tz) is not None:
        return None
    due = reminders_due(entry, plan.settings, now)
    if NOTIFIED not in flags:
        if now - entry.date > MAX_AGE:
            return None
        claimed = (NOTIFIED, *(reminder_flag(k) for k in range(1, due + 1)))
        return Action(kind=NOTIFY, number=0, flags=claimed)
    sent = reminders_sent(flags)
    if due <= sent:
        return None
    # Reminders missed while quiet or down collapse into one, numbered as the latest due.
    return Action(kind=REMINDER, number=due, flags=tuple(reminder_flag(k) for k in range(sent + 1, due + 1)))


def next_due(entry: Entry, plan: Plan, now: datetime) -> datetime | None:
    """When something may next become due for ``entry`` (a quiet period's end or a reminder time)."""
    if plan.empty or entry.kind not in NOTIFIED_KINDS or SEEN in entry.flags or DELETED in entry.flags:
        return None
    quiet_end = quiet_until(now, plan.settings.quiet_hours, plan.tz)
    if quiet_end is not None:
        return quiet_end
    settings = plan.settings
    if NOTIFIED not in entry.flags or settings.reminder_minutes is None:
        return None
    k = reminders_sent(entry.flags) + 1
    if k > settings.reminder_max:
        return None
    return entry.date + k * timedelta(minutes=settings.reminder_minutes)


def _dedupe(items: tuple[str, ...], taken: set[str]) -> tuple[str, ...]:
    out: list[str] = []
    for item in items:
        if item.lower() not in taken:
            taken.add(item.lower())
            out.append(item)
    return tuple(out)


def plan_for(config: Config, owner: Mailbox, called: str | None) -> Plan:
    """Recipients for a voicemail in ``owner``'s folder that was left for mailbox ``called``.

    Group voicemails (one copy per member): the group's own ``notify`` recipients are told once, on the
    copy of its first member; every member's own recipients are told on that member's copy. A number or
    address is used once per voicemail: on the earliest copy (in ``members`` order) that names it.
    Quiet hours and reminders follow the member's own settings when it has recipients, else the group's.
    """
    group = config.mailboxes.get(called or "")
    if group is None or not group.is_group or owner.id not in group.members:
        own = owner.notify
        return Plan(
            sms=_dedupe(own.sms, set()),
            email=_dedupe(own.email, set()),
            settings=own,
            tz=owner.tz,
            language=owner.language,
        )
    sms_taken: set[str] = set()
    mail_taken: set[str] = set()
    result: Plan | None = None
    for index, member_id in enumerate(group.members):
        member = config.mailboxes.get(member_id)
        if member is None:
            continue
        sources = (group.notify, member.notify) if index == 0 else (member.notify,)
        sms = tuple(n for s in sources for n in _dedupe(s.sms, sms_taken))
        email = tuple(a for s in sources for a in _dedupe(s.email, mail_taken))
        if member.id == owner.id:
            settings = member.notify if member.notify.enabled else group.notify
            result = Plan(sms=sms, email=email, settings=settings, tz=owner.tz, language=owner.language)
            break
    assert result is not None
    return result


def watched(config: Config) -> list[Mailbox]:
    """The mailboxes whose folders can hold voicemails someone should be notified about."""
    boxes: dict[str, Mailbox] = {}
    for box in config.mailboxes.values():
        if not box.notify.enabled:
            continue
        for target in config.delivery_targets(box):
            boxes.setdefault(target.id, target)
    return list(boxes.values())
