"""A circuit breaker per PBX behind ``forward_to``: failed dials open it, a probe call closes it again.

States (https://martinfowler.com/bliki/CircuitBreaker.html): *closed* rings the PBX; after
``breaker_failures`` failed dials in a row within ``breaker_window_seconds`` it turns *open* and calls
go straight to voicemail; after ``breaker_open_seconds`` it is *half-open*: the next call is the probe
and rings the PBX while others still skip it; the probe's result closes or re-opens the breaker.

A failed dial is ``DialCallStatus=failed`` or a SIP 5xx / 408 timeout in ``DialSipResponseCode``
(https://www.twilio.com/docs/voice/twiml/sip#dialsipresponsecode); ``busy`` and ``no-answer`` prove the
PBX alive. Each instance decides from its own memory, so the call path never waits for IMAP; openings
and closings are shared with the other instances in the background (routing/background.py).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from vm2mail import metrics
from vm2mail.config.model import RoutingConfig
from vm2mail.routing.decide import BREAKER_CLOSED, BREAKER_OPEN, BREAKER_PROBE

log = logging.getLogger(__name__)

Alert = Callable[[str, str], None]  # (subject, text), sent in the background
_GAUGE = {BREAKER_CLOSED: 0, BREAKER_OPEN: 1, BREAKER_PROBE: 2}
PROBE_GRACE_SECONDS = 90.0  # a probe whose result never came (caller hung up) frees the slot after this


def target_of(forward_to: str) -> str:
    """The PBX a ``forward_to`` reaches: the SIP host, or the number itself."""
    if forward_to.startswith(("sip:", "sips:")):
        # RFC 3261 §19.1.1: sip:user@host:port;uri-parameters?headers
        hostport = re.split(r"[;?]", forward_to.split("@", 1)[-1], maxsplit=1)[0]
        host = urlsplit("//" + hostport).hostname
        return f"sip:{host or forward_to}"
    return forward_to


def dial_failed(status: str, sip_code: str | None) -> bool | None:
    """True: the PBX failed; False: it answered the signalling (even busy); None: the caller left first."""
    if sip_code and sip_code.isdigit():
        code = int(sip_code)
        if code >= 500 or code == 408:
            return True
    if status == "failed":
        return True
    if status in ("completed", "answered", "busy", "no-answer"):
        return False
    return None  # canceled: the caller hung up while it rang; says nothing about the PBX


@dataclass
class _Target:
    state: str = BREAKER_CLOSED
    failures: list[float] = field(default_factory=list)
    opened_at: float = 0.0
    probe_at: float | None = None
    changed_at: float = 0.0  # wall-clock time of the last open/close, here or learned (routing/background.py)


class Breakers:
    """Every PBX target's breaker on this instance; ``clock`` is monotonic seconds (tests may pass one)."""

    def __init__(
        self,
        config: Callable[[], RoutingConfig],
        alert: Alert | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.alert = alert
        self.clock = clock
        self._targets: dict[str, _Target] = {}
        # (target, open until as wall-clock seconds or None when closed, when): told to the other
        # instances (routing/background.py); not called for what this instance learned from them.
        self.on_change: Callable[[str, float | None, float], None] | None = None

    def _set(self, target: str, entry: _Target, state: str, *, learned: bool = False) -> None:
        if entry.state == state:
            return
        entry.state = state
        metrics.BREAKER_STATE.labels(target=target).set(_GAUGE[state])
        metrics.BREAKER_TRANSITIONS.labels(target=target, state=state).inc()
        if state == BREAKER_PROBE or learned:
            return
        entry.changed_at = time.time()
        if self.on_change is not None:
            left = self.config().breaker_open_seconds - (self.clock() - entry.opened_at)
            until = entry.changed_at + left if state == BREAKER_OPEN else None
            self.on_change(target, until, entry.changed_at)

    def learn(self, target: str, until: float | None, at: float) -> None:
        """Another instance opened (``until``) or closed (None) the breaker of ``target`` at ``at``."""
        entry = self._targets.setdefault(target, _Target())
        if at <= entry.changed_at:
            return  # what we know is as new or newer
        entry.changed_at = at
        now = time.time()
        if until is not None and until > now:
            if entry.state == BREAKER_CLOSED:
                # Open for the rest of the other instance's period, then probe like any open breaker.
                entry.opened_at = self.clock() - (self.config().breaker_open_seconds - (until - now))
                entry.failures.clear()
                entry.probe_at = None
                self._set(target, entry, BREAKER_OPEN, learned=True)
                log.warning("PBX %s: another instance found it down; calls skip it here too", target)
        elif until is None and entry.state != BREAKER_CLOSED:
            entry.failures.clear()
            entry.probe_at = None
            self._set(target, entry, BREAKER_CLOSED, learned=True)
            log.warning("PBX %s: another instance reached it again; breaker closed here too", target)

    def phase(self, forward_to: str) -> str:
        """``closed``, ``open``, or ``probe`` (half-open and no probe in flight: this call may probe)."""
        target = target_of(forward_to)
        entry = self._targets.get(target)
        if entry is None or entry.state == BREAKER_CLOSED:
            return BREAKER_CLOSED
        now = self.clock()
        if entry.state == BREAKER_OPEN and now - entry.opened_at >= self.config().breaker_open_seconds:
            self._set(target, entry, BREAKER_PROBE)
            log.info("PBX %s: breaker half-open, the next call probes it", target)
        if entry.state == BREAKER_PROBE and (
            entry.probe_at is None or now - entry.probe_at > PROBE_GRACE_SECONDS
        ):
            return BREAKER_PROBE
        return BREAKER_OPEN

    def probing(self, forward_to: str) -> None:
        """A call was let through to probe the PBX (call right after ``phase`` said ``probe``)."""
        entry = self._targets.get(target_of(forward_to))
        if entry is not None:
            entry.probe_at = self.clock()

    def state(self, forward_to: str) -> str:
        entry = self._targets.get(target_of(forward_to))
        return entry.state if entry is not None else BREAKER_CLOSED

    def result(self, forward_to: str, failed: bool | None, *, call_sid: str) -> None:
        """Record the outcome of a dial to ``forward_to``."""
        if failed is None:
            return
        metrics.DIAL_RESULTS.labels(result="failed" if failed else "reached").inc()
        target = target_of(forward_to)
        entry = self._targets.setdefault(target, _Target())
        now = self.clock()
        settings = self.config()
        if not failed:
            entry.failures.clear()
            if entry.state != BREAKER_CLOSED:
                self._set(target, entry, BREAKER_CLOSED)
                entry.probe_at = None
                log.warning("PBX %s: reached again (call %s), breaker closed", target, call_sid)
                self._alert(
                    f"vm2mail: PBX {target} reachable again",
                    f"Call {call_sid} reached {target} again; calls ring it as usual.",
                )
            return
        if entry.state != BREAKER_CLOSED:
            # The probe failed (or a dial started before the breaker opened): wait another period.
            entry.opened_at, entry.probe_at = now, None
            self._set(target, entry, BREAKER_OPEN)  # from half-open: the others hear the new period
            log.warning("PBX %s: dial failed again (call %s), breaker stays open", target, call_sid)
            return
        entry.failures = [t for t in entry.failures if now - t < settings.breaker_window_seconds] + [now]
        log.warning(
            "PBX %s: dial failed (call %s), %d of %d",
            target,
            call_sid,
            len(entry.failures),
            settings.breaker_failures,
        )
        if len(entry.failures) >= settings.breaker_failures:
            entry.failures.clear()
            entry.opened_at, entry.probe_at = now, None
            self._set(target, entry, BREAKER_OPEN)
            subject = f"vm2mail: PBX {target} is down, calls go straight to voicemail"
            text = (
                f"{settings.breaker_failures} dials to {target} failed within "
                f"{settings.breaker_window_seconds} s (last call {call_sid}). Calls for it now go straight "
                f"to voicemail; the gateway tries it again every {settings.breaker_open_seconds} s and "
                "tells you when it answers."
            )
            log.error("%s", subject)
            self._alert(subject, text)

    def _alert(self, subject: str, text: str) -> None:
        if self.alert is not None:
            try:
                self.alert(subject, text)
            except Exception:
                log.exception("breaker alert %r failed", subject)
