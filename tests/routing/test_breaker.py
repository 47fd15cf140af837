"""The PBX circuit breaker on its own: which dial results count, per-PBX keys, the probe's two outcomes."""

from __future__ import annotations

import time

import pytest

from vm2mail.config.model import RoutingConfig
from vm2mail.routing.breaker import Breakers, dial_failed, target_of
from vm2mail.routing.decide import BREAKER_CLOSED, BREAKER_OPEN, BREAKER_PROBE

PBX = "sip:201@pbx.example.com"


@pytest.mark.parametrize(
    ("status", "sip", "failed"),
    [
        ("failed", None, True),
        ("no-answer", "503", True),  # the PBX answered the INVITE with 503 Service Unavailable
        ("no-answer", "408", True),  # SIP request timeout: nobody there
        ("completed", "200", False),
        ("busy", "486", False),  # busy proves the PBX alive
        ("no-answer", "480", False),
        ("no-answer", None, False),
        ("canceled", None, None),  # the caller hung up while it rang: no verdict
    ],
)
def test_which_dial_results_count_as_failures(status: str, sip: str | None, failed: bool | None) -> None:
    assert dial_failed(status, sip) is failed


def test_one_breaker_per_pbx_host_or_number() -> None:
    assert target_of(PBX) == target_of("sip:202@pbx.example.com;transport=tls") == "sip:pbx.example.com"
    assert target_of("+4930555201") == "+4930555201"


def test_open_probe_fail_probe_succeed() -> None:
    now = [1000.0]
    alerts: list[str] = []
    breakers = Breakers(
        lambda: RoutingConfig(breaker_failures=3, breaker_window_seconds=60, breaker_open_seconds=30),
        alert=lambda subject, _text: alerts.append(subject),
        clock=lambda: now[0],
    )
    breakers.result(PBX, True, call_sid="CA1")
    breakers.result(PBX, False, call_sid="CA2")  # a success in between resets the count
    for i in range(2):
        breakers.result(PBX, True, call_sid=f"CA{i + 3}")
    assert breakers.phase(PBX) == BREAKER_CLOSED
    now[0] += 61  # the window passed: the old failures no longer count
    breakers.result(PBX, True, call_sid="CA5")
    breakers.result(PBX, True, call_sid="CA6")
    assert breakers.phase(PBX) == BREAKER_CLOSED
    breakers.result(PBX, True, call_sid="CA7")
    assert breakers.phase(PBX) == BREAKER_OPEN and alerts == [
        "vm2mail: PBX sip:pbx.example.com is down, calls go straight to voicemail"
    ]
    assert breakers.phase("sip:9@other.example.com") == BREAKER_CLOSED  # another PBX is not affected

    now[0] += 30
    assert breakers.phase(PBX) == BREAKER_PROBE
    breakers.probing(PBX)
    assert breakers.phase(PBX) == BREAKER_OPEN  # one probe at a time
    breakers.result(PBX, True, call_sid="CA8")  # the probe failed: another period
    assert breakers.phase(PBX) == BREAKER_OPEN
    now[0] += 30
    assert breakers.phase(PBX) == BREAKER_PROBE
    breakers.probing(PBX)
    breakers.result(PBX, False, call_sid="CA9")
    assert breakers.phase(PBX) == BREAKER_CLOSED and breakers.state(PBX) == BREAKER_CLOSED
    assert alerts[-1] == "vm2mail: PBX sip:pbx.example.com reachable again" and len(alerts) == 2


def test_a_probe_that_never_reports_frees_the_slot() -> None:
    now = [0.0]
    breakers = Breakers(
        lambda: RoutingConfig(breaker_failures=1, breaker_open_seconds=10), clock=lambda: now[0]
    )
    breakers.result(PBX, True, call_sid="CA1")
    now[0] += 10
    assert breakers.phase(PBX) == BREAKER_PROBE
    breakers.probing(PBX)
    now[0] += 91  # the probe call's result never came (the caller hung up during the dial)
    assert breakers.phase(PBX) == BREAKER_PROBE


def test_changes_learned_from_other_instances() -> None:
    published: list[tuple[str, float | None]] = []
    breakers = Breakers(lambda: RoutingConfig(breaker_failures=1, breaker_open_seconds=60))
    breakers.on_change = lambda target, until, _at: published.append((target, until))
    now = time.time()
    breakers.learn("sip:pbx.example.com", now + 30, now)
    assert breakers.phase(PBX) == BREAKER_OPEN and published == []  # learned, not re-published
    breakers.learn("sip:pbx.example.com", now + 30, now - 5)  # older news changes nothing
    breakers.learn("sip:pbx.example.com", None, now + 1)  # another instance's probe reached it
    assert breakers.phase(PBX) == BREAKER_CLOSED and published == []
    breakers.result(PBX, True, call_sid="CA1")  # this instance's own finding is published
    [(target, until)] = published
    assert target == "sip:pbx.example.com" and until is not None and until > now + 55
