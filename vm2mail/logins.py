"""Mailbox + PIN login with per-mailbox lockout; PIN hashes and failures live in IMAP METADATA (RFC 5464).

Layer: core. Shared by the phone menu and the web inbox, so guesses by either door count towards one
lockout. May import: services, config, errors and the base modules.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from vm2mail.config.model import Config, Mailbox
from vm2mail.mailstore.metadata import Metadata
from vm2mail.pinhash import PIN, N, P, R, hash_pin, verify_pin

log = logging.getLogger(__name__)

# RFC 5464 entries under /private/vendor/vm2mail/ (Metadata adds the prefix) on the mailbox folder, so
# every gateway instance sees the same values and they survive restarts. Only hashes and counters.
PIN_ENTRY = "pin-hash"
FAILURES_ENTRY = "pin-failures"  # space-separated epoch seconds of recent failures
LOCKED_ENTRY = "locked-until"  # epoch seconds

# scrypt parameters as hash_pin uses them; the salt and hash are zeros: no PIN matches it.
_DUMMY_HASH = f"scrypt${N}${R}${P}$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

Alert = Callable[[str, str], Awaitable[None]]  # (subject, text) to the admin


class Result(enum.Enum):
    OK = "ok"
    WRONG = "wrong"  # wrong PIN, unknown mailbox or a mailbox without a PIN: the caller is not told which
    LOCKED = "locked"


class Logins:
    """Checks PINs against the phone-set hash (METADATA) or the YAML ``pin`` and locks after failures."""

    def __init__(self, config: Callable[[], Config], metadata: Metadata, alert: Alert | None = None) -> None:
        self.config = config
        self.metadata = metadata
        self.alert = alert
        # One PIN check per mailbox at a time: otherwise calls guessing in parallel would all pass the
        # lock test and each overwrite the others' failure counts, getting far more guesses.
        self._checking: dict[str, asyncio.Lock] = {}

    async def locked_until(self, mailbox: Mailbox) -> float:
        raw = await self.metadata.get(mailbox, LOCKED_ENTRY)
        try:
            until = float(raw or 0)
        except ValueError:
            return 0.0
        return until if until > time.time() else 0.0

    async def check(self, mailbox: Mailbox | None, pin: str, *, call_sid: str) -> Result:
        """Verify ``pin`` for ``mailbox`` (None: unknown number, always WRONG); counts failures."""
        if mailbox is None:
            log.info("call %s: menu login for an unknown mailbox", call_sid)
            # Spend the same scrypt time, so the answer's delay does not tell which mailboxes exist.
            await asyncio.to_thread(verify_pin, pin, _DUMMY_HASH)
            return Result.WRONG
        lock = self._checking.setdefault(mailbox.id, asyncio.Lock())
        async with lock:
            return await self._check(mailbox, pin, call_sid)

    async def _check(self, mailbox: Mailbox, pin: str, call_sid: str) -> Result:
        # Three entries read at once (the store pools several connections per login).
        locked, phone_hash, failures = await asyncio.gather(
            self.locked_until(mailbox),
            self.metadata.get(mailbox, PIN_ENTRY),
            self.metadata.get(mailbox, FAILURES_ENTRY),
        )
        if locked:
            log.warning("call %s: menu login to locked mailbox %s refused", call_sid, mailbox.id)
            return Result.LOCKED
        stored = phone_hash or mailbox.pin_hash  # a PIN changed by phone wins over the YAML pin
        # scrypt costs tens of ms of CPU by design: off the event loop.
        ok = stored is not None and await asyncio.to_thread(verify_pin, pin, stored)
        if ok:
            if failures:
                await self.metadata.set(mailbox, FAILURES_ENTRY, None)
            log.info("call %s: menu login to mailbox %s", call_sid, mailbox.id)
            return Result.OK
        locked = await self._failed(mailbox, f"call {call_sid}", "wrong PIN", failures)
        return Result.LOCKED if locked else Result.WRONG

    async def record_failure(self, mailbox: Mailbox, where: str, what: str = "wrong password") -> bool:
        """Count a failed login from another door (the web inbox) towards the same lockout."""
        lock = self._checking.setdefault(mailbox.id, asyncio.Lock())
        async with lock:
            return await self._failed(mailbox, where, what, await self.metadata.get(mailbox, FAILURES_ENTRY))

    async def _failed(self, mailbox: Mailbox, where: str, what: str, failures: str | None) -> bool:
        """Record a failure (``what`` happened at ``where``: "call CA...", "web login from ..."); True
        when it locked the mailbox (for the phone menu and the web inbox alike)."""
        menu = self.config().menu
        now = time.time()
        window = menu.lockout_minutes * 60
        times = (_float(x) for x in (failures or "").split())
        recent = [t for t in times if t is not None and now - t < window]
        recent.append(now)
        log.warning(
            "%s: %s for mailbox %s (%d of %d failed logins within %d min)",
            where,
            what,
            mailbox.id,
            len(recent),
            menu.lockout_failures,
            menu.lockout_minutes,
        )
        if len(recent) < menu.lockout_failures:
            await self.metadata.set(mailbox, FAILURES_ENTRY, " ".join(str(int(t)) for t in recent))
            return False
        until = now + window
        await self.metadata.set(mailbox, LOCKED_ENTRY, str(int(until)))
        await self.metadata.set(mailbox, FAILURES_ENTRY, None)
        when = datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds")
        subject = f"vm2mail: mailbox {mailbox.id} locked after {len(recent)} failed logins"
        text = (
            f"Mailbox {mailbox.id} ({mailbox.name}) is locked for the phone menu and the web inbox until "
            f"{when} after {len(recent)} failed logins within {menu.lockout_minutes} minutes (a wrong PIN "
            f"by phone or a wrong password in the web inbox). The last: {what}, {where}."
        )
        log.error("%s (until %s; last: %s, %s)", subject, when, what, where)
        if self.alert is not None:
            try:
                await self.alert(subject, text)
            except Exception:
                log.exception("admin alert for the lockout of mailbox %s failed", mailbox.id)
        return True

    async def change_pin(self, mailbox: Mailbox, pin: str) -> None:
        """Store the hash of a PIN set by phone (never the PIN); ValueError unless 4 to 12 digits."""
        if not PIN.match(pin):
            raise ValueError("a PIN is 4 to 12 digits")
        hashed = await asyncio.to_thread(hash_pin, pin)
        await self.metadata.set(mailbox, PIN_ENTRY, hashed)
        log.info("mailbox %s: PIN changed by phone", mailbox.id)


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
