"""The notifier: sends each voicemail notification and reminder exactly once, and the admin alerts.

One mechanism serves every trigger. A scan lists the folders of the mailboxes that have recipients
(cheap: ``Voicemails`` revalidates its cached view with one STATUS), asks ``policy.decide`` what is due
for each voicemail, claims it in IMAP (``claim.claim``: exclusive across gateway instances) and only
then sends. Scans run after a delivery (``on_delivered``, or ``nudge`` from the watcher), when the next
quiet period or reminder falls due (with a little jitter), right after IMAP comes back from an outage,
and at least every ``watcher.reminder_check_seconds``.

Trade-off: the keyword is set before sending, so a crash between claim and send loses that one notice
instead of sending it twice (the claim is logged, so the loss is visible). A send that fails
temporarily on every channel releases the claim and is retried at the next scan; a permanent refusal
(Twilio 21211 and friends, SMTP 5xx) is logged and not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import jinja2

from vm2mail.config.model import Config, Mailbox
from vm2mail.errors import Vm2mailError
from vm2mail.jobs.jobs import Job
from vm2mail.mailstore.store import ImapStore
from vm2mail.mailstore.voicemails import Entry, Voicemails
from vm2mail.notify import policy
from vm2mail.notify.claim import claim, prune, release
from vm2mail.notify.deliver import send_texts
from vm2mail.notify.texts import alert_texts, voicemail_texts
from vm2mail.twilioapi.rest import TwilioRest

log = logging.getLogger(__name__)

ALERT_REPEAT_SECONDS = 3600.0  # an identical admin alert is sent at most once an hour
SCAN_CONCURRENCY = 8  # folders listed at once (each on its own login's pooled connection)
MIN_WAIT_SECONDS = 1.0
DUE_JITTER_SECONDS = 2.0  # spread of the wake-up at a due time across instances
RETRY_SECONDS = 2.0  # probe interval while IMAP is down; first retry of a folder that failed
PRUNE_SECONDS = 3600.0  # how often each mailbox's old claim markers are pruned


@dataclass
class _Alerted:
    last: float
    suppressed: int = 0


class Notifier:
    """Sends voicemail notifications and reminders (SMS, e-mail) and admin alerts."""

    def __init__(
        self,
        config: Callable[[], Config],
        store: ImapStore,
        rest: TwilioRest,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._config = config
        self.store = store
        self.rest = rest
        self.now = clock or (lambda: datetime.now(UTC))
        self.voicemails = Voicemails(store)
        self._wake = asyncio.Event()
        self._pending: set[str] = set()
        self._alerts: dict[tuple[str, str], _Alerted] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._scan_lock = asyncio.Lock()
        self._failed: set[str] = set()  # mailboxes whose last scan failed (IMAP down, refused)
        self._pruned: dict[str, float] = {}  # mailbox id -> monotonic time of the last prune

    # -- triggers --------------------------------------------------------------------------------------

    async def on_delivered(self, job: Job, target: Mailbox, uid: int) -> None:
        """Pipeline hook: a voicemail landed in ``target``'s folder; scan that folder soon (never blocks)."""
        log.debug("job=%s nudge for %s uid=%d", job.id, target.id, uid)
        self.nudge(target.id)

    def nudge(self, mailbox_id: str | None = None) -> None:
        """Scan ``mailbox_id``'s folder (or, with None, every folder) at once; for the watcher's events."""
        self._pending.add(mailbox_id or "*")
        self._wake.set()

    async def run(self) -> None:
        """Scan forever: on nudges, when something falls due, and every ``reminder_check_seconds``.

        While IMAP is unreachable the loop probes it every ``RETRY_SECONDS`` and scans every folder the
        moment it answers again, so what fell due during the outage goes out at once, not a period later.
        """
        last_full = -float("inf")
        pending: set[str] | None = None  # None: everything
        known: datetime | None = None  # the next due time the last full scan found
        down = False  # the last scan failed and the server did not answer a probe
        retry = RETRY_SECONDS
        while True:
            started = time.monotonic()
            if down:
                down = not await self._reachable()
                pending = None  # back: scan everything, whatever fell due meanwhile
                if not down:
                    log.info("IMAP reachable again: scanning every folder for notices due meanwhile")
            next_at: datetime | None = None
            if not down:
                full = pending is None or "*" in pending
                if full:
                    last_full = started
                try:
                    next_at = await self.scan(None if full else pending)
                except Exception:  # a bug must not stop notifications for everyone: log, keep scanning
                    log.exception("notification scan failed")
                if full:
                    known = next_at
                elif known is not None and known > self.now():
                    next_at = known if next_at is None else min(next_at, known)
                if self._failed:
                    down = not await self._reachable()
                    if down:
                        log.warning("IMAP unreachable: notices wait; probing every %.0f s", RETRY_SECONDS)
            period = float(self._config().watcher.reminder_check_seconds)
            wait = max(0.0, period - (time.monotonic() - last_full))
            if next_at is not None:
                # Every instance computes the same due time: a random delay lets one go first, and the
                # others then see its keywords in their listing instead of racing for the claim.
                due_in = max(MIN_WAIT_SECONDS, (next_at - self.now()).total_seconds())
                wait = min(wait, due_in + random.uniform(0.0, DUE_JITTER_SECONDS))
            if down:
                wait = RETRY_SECONDS  # probe at a steady pace, however long ago the last full scan was
                retry = RETRY_SECONDS
            elif self._failed:
                # Reachable but a folder failed (refused, or the server was restarting): retry it sooner
                # than a period, backing off.
                wait = min(wait, retry)
                retry = min(period, retry * 2)
            else:
                retry = RETRY_SECONDS
            woken = False
            with contextlib.suppress(TimeoutError):
                woken = await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()
            nudged, self._pending = self._pending, set()
            due_full = time.monotonic() - last_full >= period
            pending = None if (due_full or not woken) else nudged

    async def _reachable(self) -> bool:
        """Whether the IMAP server answers at all (connect and NOOP, bounded by the IMAP timeout)."""
        try:
            await self.store.ping()
        except (Vm2mailError, OSError) as exc:
            log.debug("IMAP probe for notifications failed: %s", exc)
            return False
        return True

    # -- scanning --------------------------------------------------------------------------------------

    async def scan(self, mailbox_ids: set[str] | None = None) -> datetime | None:
        """One pass over the watched folders (or only ``mailbox_ids``); when the next action falls due."""
        async with self._scan_lock:
            config = self._config()
            boxes = [b for b in policy.watched(config) if mailbox_ids is None or b.id in mailbox_ids]
            limit = asyncio.Semaphore(SCAN_CONCURRENCY)

            async def one(box: Mailbox) -> datetime | None:
                async with limit:
                    return await self._scan_box(config, box)

            results = await asyncio.gather(*(one(box) for box in boxes))
            return min((r for r in results if r is not None), default=None)

    async def _scan_box(self, config: Config, box: Mailbox) -> datetime | None:
        try:
            listing = await self.voicemails.listing(box)
        except Vm2mailError as exc:
            log.warning("mailbox %s: cannot list %r for notifications: %s", box.id, box.folder, exc)
            self._failed.add(box.id)
            return None
        self._failed.discard(box.id)
        next_at: datetime | None = None
        acted = False
        for entry in listing.entries:
            plan = policy.plan_for(config, box, entry.mailbox)
            now = self.now()
            action = policy.decide(entry, plan, now)
            if action is not None:
                acted = True
                try:
                    if await self._act(config, box, entry, plan, action):
                        entry = replace(entry, flags=entry.flags | set(action.flags))
                except Vm2mailError as exc:
                    log.warning("mailbox %s uid=%d: notification deferred: %s", box.id, entry.uid, exc)
                    self._failed.add(box.id)
            due = policy.next_due(entry, plan, now)
            # Already due but not done (send failed, claimed elsewhere): the periodic scan retries it.
            if due is not None and due > now and (next_at is None or due < next_at):
                next_at = due
        if acted:  # markers exist only where notices are claimed: prune there, after the sends
            await self._prune(box)
        return next_at

    async def _prune(self, box: Mailbox) -> None:
        """Drop old claim markers of ``box``'s account now and then (never fails the scan)."""
        now = time.monotonic()
        if now - self._pruned.get(box.id, -float("inf")) < PRUNE_SECONDS:
            return
        self._pruned[box.id] = now
        try:
            gone = await prune(self.store, box)
        except Vm2mailError as exc:
            log.warning("mailbox %s: cannot prune notification claims: %s", box.id, exc)
            return
        if gone:
            log.info("mailbox %s: pruned %d old notification claim(s)", box.id, gone)

    async def _act(
        self, config: Config, box: Mailbox, entry: Entry, plan: policy.Plan, action: policy.Action
    ) -> bool:
        """Claim ``entry`` for ``action`` and send it; whether the claim stays (sent or refused for good)."""
        what = f"{action.kind} mailbox={box.id} folder={box.folder!r} uid={entry.uid}"
        what += f" message_id={entry.message_id}"
        called = config.mailboxes.get(entry.mailbox or "")
        try:  # render before claiming: a broken override template must not cost the notice
            texts = voicemail_texts(
                action.kind, entry, box, called, plan.language, action.number, config.templates_dir
            )
        except jinja2.TemplateError:
            log.exception("%s: cannot render the notification templates; not sent", what)
            return False
        if not await claim(self.store, box, box.folder, entry.uid, entry.message_id, action.flags):
            log.debug("%s: already claimed elsewhere (or heard meanwhile)", what)
            return False
        # From here until the sends finish, a crash loses this notice (never duplicates it).
        log.info("%s: claimed with %s", what, " ".join(action.flags))
        outcome = await send_texts(config, self.rest, plan.sms, plan.email, texts, action.kind, what)
        if outcome.sent == 0 and outcome.temporary:
            await release(self.store, box, box.folder, entry.uid, entry.message_id, action.flags)
            log.warning("%s: nothing sent; released, retried at the next scan", what)
            return False
        if outcome.temporary or outcome.permanent:
            log.error(
                "%s: sent %d, %d recipient(s) failed and are not retried",
                what,
                outcome.sent,
                outcome.temporary + outcome.permanent,
            )
        return True

    # -- admin alerts ----------------------------------------------------------------------------------

    async def alert_admin(self, subject: str, text: str) -> None:
        """Tell the admin (``admin.email`` via the relay, ``admin.sms`` via Twilio); never raises.

        Identical alerts (same subject and text) go out at most once per ALERT_REPEAT_SECONDS; the next
        one says how many were suppressed. Sending is awaited: on a request path use ``alert_soon``.
        """
        config = self._config()
        now = time.monotonic()
        key = (subject, text)
        self._alerts = {
            k: v for k, v in self._alerts.items() if now - v.last < ALERT_REPEAT_SECONDS or k == key
        }
        seen = self._alerts.get(key)
        if seen is not None and now - seen.last < ALERT_REPEAT_SECONDS:
            seen.suppressed += 1
            log.info("admin alert %r repeated; suppressed (%d so far)", subject, seen.suppressed)
            return
        suppressed = seen.suppressed if seen is not None else 0
        self._alerts[key] = _Alerted(last=now)
        log.warning("admin alert: %s", subject)
        admin = config.admin
        if not (admin.email or admin.sms):
            log.warning("admin alert %r not sent: no admin.email or admin.sms configured", subject)
            return
        texts = alert_texts(subject, text, config.defaults.language, config.templates_dir, suppressed)
        await send_texts(
            config,
            self.rest,
            (admin.sms,) if admin.sms else (),
            (admin.email,) if admin.email else (),
            texts,
            "alert",
            f"admin alert {subject!r}",
        )

    def alert_soon(self, subject: str, text: str) -> None:
        """``alert_admin`` in the background, for callers that must not wait (webhooks, the menu)."""
        task = asyncio.get_running_loop().create_task(self.alert_admin(subject, text))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Finish alerts still being sent (bounded), then drop them."""
        tasks = list(self._tasks)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=5.0)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._tasks.clear()
