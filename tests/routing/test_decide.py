"""The routing decision and office hours, as tables: what a call does in each situation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from vm2mail.config import Config
from vm2mail.errors import ConfigError
from vm2mail.routing.decide import (
    AWAY,
    BREAKER_CLOSED,
    BREAKER_OPEN,
    BREAKER_PROBE,
    CLOSED,
    GREETING,
    NORMAL,
    OUTAGE,
    VOICEMAIL,
    Switch,
    decide,
    is_open,
    next_change,
)

MAIN = "+15550001000"
HOURS = {
    "weekly": {"mon-fri": ["08:00-12:00", "13:00-17:00"], "sat": "10:00-24:00"},
    "holidays": ["2026-12-24"],
}
# Mondays, Berlin time (UTC+1 in winter).
MON_10 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # 10:00 local: open
MON_1230 = datetime(2026, 12, 7, 11, 30, tzinfo=UTC)  # lunch: closed
THU_HOLIDAY = datetime(2026, 12, 24, 9, 0, tzinfo=UTC)
SAT_2330 = datetime(2026, 12, 12, 22, 30, tzinfo=UTC)


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config(
        mailboxes={
            "201": {"office_hours": HOURS},
            "202": {
                "name": "Ben",
                "imap_user": "ben@example.com",
                "imap_password": "pw",
                "numbers": [MAIN],
            },
            "900": {"name": "Key people", "members": ["201", "202"], "numbers": ["+15550009000"]},
        },
        outage={"numbers": [MAIN, "+15550002001"], "routes": {MAIN: "900"}},
    )


def test_office_hours_weekly_lunch_holiday_and_midnight(config: Config) -> None:
    hours = config.mailboxes["201"].office_hours
    tz = config.mailboxes["201"].tz
    assert is_open(hours, MON_10.astimezone(tz))
    assert not is_open(hours, MON_1230.astimezone(tz))
    assert not is_open(hours, THU_HOLIDAY.astimezone(tz))
    assert is_open(hours, SAT_2330.astimezone(tz))  # 10:00-24:00 includes the last minute
    assert not is_open(hours, datetime(2026, 12, 13, 10, 0, tzinfo=UTC).astimezone(tz))  # Sunday
    assert hours is not None
    change = next_change(hours, MON_1230.astimezone(tz))
    assert change is not None and (change.hour, change.minute) == (13, 0)


@pytest.mark.parametrize(
    ("box", "switch", "outage", "breaker", "now", "forward", "greeting", "target"),
    [
        ("201", NORMAL, NORMAL, BREAKER_CLOSED, MON_10, True, GREETING, "201"),
        ("201", VOICEMAIL, NORMAL, BREAKER_CLOSED, MON_10, False, AWAY, "201"),
        ("201", NORMAL, NORMAL, BREAKER_CLOSED, MON_1230, False, CLOSED, "201"),
        ("201", NORMAL, NORMAL, BREAKER_OPEN, MON_10, False, GREETING, "201"),
        ("201", NORMAL, NORMAL, BREAKER_PROBE, MON_10, True, GREETING, "201"),
        ("201", VOICEMAIL, VOICEMAIL, BREAKER_CLOSED, MON_10, False, OUTAGE, "201"),  # covered, own box
        ("202", NORMAL, VOICEMAIL, BREAKER_CLOSED, MON_10, False, OUTAGE, "900"),  # main number -> group
        ("202", NORMAL, NORMAL, BREAKER_CLOSED, MON_10, False, GREETING, "202"),  # no forward_to
    ],
)
def test_decision_table(
    config: Config,
    box: str,
    switch: str,
    outage: str,
    breaker: str,
    now: datetime,
    forward: bool,
    greeting: str,
    target: str,
) -> None:
    mailbox = config.mailboxes[box]
    route = decide(
        config=config,
        called=mailbox.numbers[0],
        mailbox=mailbox,
        switch=Switch(mode=switch),
        outage=Switch(mode=outage),
        breaker=breaker,
        now=now,
    )
    assert (route.forward, route.greeting, route.mailbox.id) == (forward, greeting, target)


def test_expired_switches_count_as_normal(config: Config) -> None:
    mailbox = config.mailboxes["201"]
    past = MON_10.timestamp() - 1
    route = decide(
        config=config,
        called=mailbox.numbers[0],
        mailbox=mailbox,
        switch=Switch(mode=VOICEMAIL, until=past),
        outage=Switch(mode=VOICEMAIL, until=past),
        breaker=BREAKER_CLOSED,
        now=MON_10,
    )
    assert route.forward and route.greeting == GREETING


def test_uncovered_numbers_ignore_the_outage(config: Config) -> None:
    group = config.mailboxes["900"]
    route = decide(
        config=config,
        called=group.numbers[0],
        mailbox=group,
        switch=Switch(),
        outage=Switch(mode=VOICEMAIL),
        breaker=BREAKER_CLOSED,
        now=MON_10,
    )
    assert route.greeting == GREETING


def test_unreadable_switch_is_normal() -> None:
    assert Switch.from_json("{not json") == Switch()
    assert Switch.from_json('{"mode": "bogus"}').mode == NORMAL


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {
                "mailboxes": {
                    "201": {"office_hours": {"weekly": {"mon-fri": ["08:00-12:00"], "mon": ["11:00-14:00"]}}}
                }
            },
            "mailboxes.201.office_hours.weekly.mon[0]: overlaps other hours given for mon",
        ),
        (
            {"mailboxes": {"201": {"office_hours": {"weekly": {"fri-mon": ["08:00-12:00"]}}}}},
            "mailboxes.201.office_hours.weekly.fri-mon: 'fri-mon': the range must run forward",
        ),
        (
            {"mailboxes": {"201": {"office_hours": {"weekly": {"mon": ["17:00-08:00"]}}}}},
            "mailboxes.201.office_hours.weekly.mon[0]: '17:00-08:00': the end must be after the start",
        ),
        (
            {"mailboxes": {"201": {"office_hours": {"holidays": ["24.12.2026"]}}}},
            "mailboxes.201.office_hours.holidays[0]: '24.12.2026' is not a date",
        ),
        (
            {"outage": {"routes": {"+15550002001": "999"}}},
            "outage.routes.+15550002001: unknown mailbox '999'",
        ),
        ({"outage": {"monitor_token": "short"}}, "outage.monitor_token: is too short"),
        (
            {"mailboxes": {"201": {"forward_to": "pbx.example.com"}}},
            "mailboxes.201.forward_to: 'pbx.example.com' is neither",
        ),
    ],
)
def test_bad_routing_config_names_file_line_and_key(
    make_config: Callable[..., Config], overrides: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(**overrides)
    problems = "\n".join(caught.value.problems)
    assert expected in problems, problems
    assert ".yaml:" in problems


def test_sip_forward_and_token_from_the_environment(
    make_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VM2MAIL_TEST_MONITOR_TOKEN", "m" * 24)
    config = make_config(
        mailboxes={"201": {"forward_to": "sip:201@pbx.example.com"}},
        outage={"monitor_token": "${VM2MAIL_TEST_MONITOR_TOKEN}"},
    )
    assert config.mailboxes["201"].forward_to == "sip:201@pbx.example.com"
    assert config.outage.monitor_token == "m" * 24
    assert "m" * 24 not in repr(config.outage)


def test_holidays_alone_keep_every_other_day_open(make_config: Callable[..., Config]) -> None:
    config = make_config(mailboxes={"201": {"office_hours": {"holidays": ["2026-12-24"]}}})
    box = config.mailboxes["201"]
    assert is_open(box.office_hours, MON_10.astimezone(box.tz))
    assert is_open(box.office_hours, SAT_2330.astimezone(box.tz))
    assert not is_open(box.office_hours, THU_HOLIDAY.astimezone(box.tz))


def test_a_numbers_office_hours_win_over_its_mailboxes(make_config: Callable[..., Config]) -> None:
    config = make_config(
        mailboxes={"201": {"numbers": ["+15550002001", "+15550002009"], "office_hours": HOURS}},
        office_hours={"+15550002009": {"weekly": {"sat-sun": ["00:00-24:00"]}}},
    )
    box = config.mailboxes["201"]

    def greeting(called: str, now: datetime) -> str:
        return decide(
            config=config,
            called=called,
            mailbox=box,
            switch=Switch(),
            outage=Switch(),
            breaker=BREAKER_CLOSED,
            now=now,
        ).greeting

    assert greeting("+15550002001", MON_10) == GREETING
    assert greeting("+15550002009", MON_10) == CLOSED  # the weekend line is closed on weekdays
    assert greeting("+15550002009", SAT_2330) == GREETING


def test_office_hours_for_a_number_no_mailbox_has(make_config: Callable[..., Config]) -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(office_hours={"+15550007777": {"holidays": ["2026-12-24"]}})
    assert "office_hours.+15550007777: +15550007777 is not a number of any mailbox" in str(caught.value)
