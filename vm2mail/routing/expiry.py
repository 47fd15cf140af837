"""Announces the end of an outage that ran out by its end time, since nobody switched it off to say so.

Calls need no timer (a switch past its end counts as normal, routing/decide.py), but the owners of
the outage mailboxes were told it started and must be told it ended. Each gateway instance checks the
switch every ``CHECK_SECONDS`` (sooner when the end is near); the first to find it expired writes it
back as normal (by "expired") and sends the end notice. METADATA has no compare-and-set, so two
instances finding it in the same instant could both send it: a random pause and a second read before
writing make that unlikely (README).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from vm2mail.config.model import Config, OutageConfig
from vm2mail.errors import Vm2mailError
from vm2mail.routing import control
from vm2mail.routing.decide import NORMAL, VOICEMAIL, Switch
from vm2mail.routing.switches import Switches
from vm2mail.telephony.rest import TwilioRest

log = logging.getLogger(__name__)
audit = logging.getLogger("vm2mail.audit")

CHECK_SECONDS = 30.0
JITTER_SECONDS = 1.0


def _expired(switch: Switch, now: float) -> bool:
    return switch.mode == VOICEMAIL and switch.until is not None and switch.until <= now


class OutageExpiry:
    """The background check; ``run`` forever, or ``check`` once (both never raise on IMAP trouble)."""

    def __init__(self, config: Callable[[], Config], switches: Switches, rest: TwilioRest | None) -> None:
        self.config = config
        self.switches = switches
        self.rest = rest

    def enabled(self) -> bool:
        return self.config().outage != OutageConfig()  # no outage section: nothing to announce

    async def check(self) -> float | None:
        """Announce an expired outage; the seconds until the current one ends (None: none running)."""
        if not self.enabled():
            return None
        switch = await self.switches.outage()
        now = time.time()
        if not _expired(switch, now):
            return (switch.until - now) if switch.mode == VOICEMAIL and switch.until else None
        await asyncio.sleep(random.uniform(0, JITTER_SECONDS))
        if not _expired(await self.switches.outage(), time.time()):
            return None  # another instance announced it (or someone switched it again)
        await self.switches.set_outage(Switch(mode=NORMAL, since=switch.until, by="expired"))
        audit.info("audit: outage mode off by its end time (switched on by %s)", switch.by or "?")
        await control.notify_owners(self.config(), self.rest, started=False, until=None, by="expired")
        return None

    async def run(self) -> None:
        while True:
            wait = CHECK_SECONDS
            try:
                left = await self.check()
                if left is not None:
                    wait = min(wait, max(0.5, left + 0.1))
            except Vm2mailError as exc:
                log.warning("outage end check failed, trying again in %.0f s: %s", wait, exc)
            except Exception:  # a bug must not stop the gateway: log, keep checking
                log.exception("outage end check failed")
            await asyncio.sleep(wait)
