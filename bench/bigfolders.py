"""bench/watch.py, part two: big folders (10,000 voicemails) among many small ones, CONDSTORE or not.

Measured in the same run, on the same folder:
- initial sync of one big folder by the old path (aioimaplib's own FetchCommand, what the watcher used
  before the protocol module) and by the new one (STATUS, ``ImapConnection.uid_fetch_all`` in UID
  ranges, ``protocol.parse_fetch``),
  each with the longest event-loop stall seen by a 5 ms ticker task meanwhile;
- gateway start: the Watcher on every mailbox until all folders are synced, with the longest stall;
- a \\Seen set by a second IMAP client on a big folder, until (a) the watcher's counts show it, (b) a
  watcher subscriber (what the notifier and group sync are) gets the event, (c) the menu's
  ``Voicemails.listing`` counts show it: p50/p95 over ``--changes``;
- a voicemail deleted by a second client (UID MOVE to Trash) until the watcher's counts show it
  (QRESYNC's VANISHED where the server has it, else the UID list);
- idle CPU of the gateway process while nothing changes.
Timings are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import imaplib
import os
import resource
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from vm2mail import longlived
from vm2mail.config.model import Config
from vm2mail.devstack.dovecot import MAIL_GID, MAIL_UID, DevDovecot
from vm2mail.mailstore.connection import ImapConnection
from vm2mail.mailstore.entries import FETCH_ITEMS, entries_from
from vm2mail.mailstore.protocol import parse_fetch, untagged
from vm2mail.mailstore.store import ImapStore
from vm2mail.mailstore.voicemails import Voicemails
from vm2mail.watcher import Watcher, WatchEvent


class LagMeter:
    """A ticker task that sleeps 5 ms at a time and remembers the longest overshoot (an event-loop stall)."""

    def __init__(self) -> None:
        self.worst = self.worst_gc = self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, time.monotonic() - before - 0.005)

    def __enter__(self) -> LagMeter:
        self.worst = self.worst_gc = 0.0
        self._task = asyncio.get_running_loop().create_task(self._tick())
        gc.callbacks.append(self._gc)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        gc.callbacks.remove(self._gc)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        """The longest full (generation 2) collection: what a stall is made of when it is not our code."""
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif info["generation"] == 2:
            self.worst_gc = max(self.worst_gc, time.perf_counter() - self._gc_started)


def voicemail(n: int, user: str) -> bytes:
    return (
        f"From: +4930{n:07d} <voicemail@bench.example>\r\nTo: {user}\r\n"
        f"Date: Mon, 23 Nov 2026 09:{n // 600 % 60:02d}:{n // 10 % 60:02d} +0000\r\n"
        f"Subject: Voicemail from +4930{n:07d}\r\nMessage-ID: <big{n}.{user}>\r\n"
        f"X-Vm2mail-Kind: voicemail\r\nX-Vm2mail-Caller: +4930{n:07d}\r\nX-Vm2mail-Duration: 11\r\n"
        f"X-Vm2mail-Mailbox: big\r\nX-Vm2mail-Call-Id: CA{n:032x}\r\nContent-Type: text/plain\r\n\r\n"
        "A voicemail.\r\n"
    ).encode()


def fill(dovecot: DevDovecot, user: str, password: str, count: int) -> None:
    """``count`` voicemails in the account's Voicemail folder, written as Maildir files, then indexed."""
    imap = imaplib.IMAP4(dovecot.host, dovecot.port)
    try:
        imap.login(user, password)
        imap.create('"Voicemail"')
        imap.subscribe('"Voicemail"')
        imap.create('"Trash"')  # where move_away puts what another client deletes
        local, domain = user.split("@")
        cur = dovecot.mail_root / domain / local / "Maildir" / ".Voicemail" / "cur"
        stamp = int(time.time())
        for n in range(count):
            data = voicemail(n, user)
            path = cur / f"{stamp}.M{n}P{os.getpid()}.bench,S={len(data)}:2,"
            path.write_bytes(data)
            os.chown(path, MAIL_UID, MAIL_GID)
        # Index and cache the header fields once (as a server in service would have them).
        imap.select('"Voicemail"')
        imap.uid("FETCH", "1:*", FETCH_ITEMS)
    finally:
        imap.logout()


def as_other_client(dovecot: DevDovecot, user: str, password: str, *command: str) -> float:
    """One ``UID <command>`` on Voicemail by another IMAP client; the monotonic time it was sent."""
    imap = imaplib.IMAP4(dovecot.host, dovecot.port)
    try:
        imap.login(user, password)
        imap.select('"Voicemail"')
        sent = time.monotonic()
        status, _ = imap.uid(*command)
        assert status == "OK", command
        return sent
    finally:
        imap.logout()


def set_seen(dovecot: DevDovecot, user: str, password: str, uid: int, seen: bool) -> float:
    return as_other_client(
        dovecot, user, password, "STORE", str(uid), "+FLAGS" if seen else "-FLAGS", "(\\Seen)"
    )


def move_away(dovecot: DevDovecot, user: str, password: str, uid: int) -> float:
    """Another client deletes a voicemail (UID MOVE to Trash, RFC 6851): an expunge in Voicemail."""
    return as_other_client(dovecot, user, password, "MOVE", str(uid), '"Trash"')


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def initial_sync(cfg: Config, user: str, password: str, old_timeout: float) -> dict[str, Any]:
    """One big folder read by the old path and the new one, on the same connection and folder."""
    conn = await ImapConnection.open(cfg.imap, user, password)
    figures: dict[str, Any] = {}
    try:
        await conn.select("Voicemail")
        with LagMeter() as lag:
            started = time.monotonic()
            status = await conn.status("Voicemail")
            assert status is not None
            records = await conn.uid_fetch_all(FETCH_ITEMS, status.uidnext)
            entries = entries_from(records.values())
            figures["new"] = (time.monotonic() - started, lag.worst, len(entries))
        with LagMeter() as lag:
            started = time.monotonic()
            try:
                response = await asyncio.wait_for(conn.client.uid("fetch", "1:*", FETCH_ITEMS), old_timeout)
                old = entries_from(parse_fetch(untagged(response)).values())
                figures["old"] = (time.monotonic() - started, lag.worst, len(old))
            except TimeoutError:
                figures["old"] = (None, lag.worst, 0)
    finally:
        conn.discard()
    return figures


async def poll(check: Callable[[], Awaitable[bool]] | Callable[[], bool], sent: float, limit: float) -> float:
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - sent
        if time.monotonic() - sent > limit:
            return float("inf")
        await asyncio.sleep(0.002)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))]


async def measure(
    dovecot: DevDovecot,
    cfg: Config,
    users: list[tuple[str, str]],
    big_ids: list[str],
    big_size: int,
    changes: int,
    idle_seconds: float,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    user, password = users[int(big_ids[0])]
    out["sync"] = await initial_sync(cfg, user, password, old_timeout=120)

    store = ImapStore(cfg.imap)
    watcher = Watcher(lambda: cfg, store)
    voicemails = Voicemails(store)
    longlived.settle_start()  # as `vm2mail serve` does once the gateway is up
    events: list[tuple[float, WatchEvent]] = []

    async def collect(event: WatchEvent) -> None:
        if not event.initial:  # like the notifier: nothing kept of the 100,000 start-up events
            events.append((time.monotonic(), event))

    watcher.subscribe(collect)
    ids = list(cfg.mailboxes)
    started = time.monotonic()
    task = asyncio.create_task(watcher.run())
    try:
        with LagMeter() as lag:
            while sum(watcher.counts(i) is not None for i in ids) < len(ids):
                if time.monotonic() - started > 900:
                    raise SystemExit("not every folder synced within 900 s")
                await asyncio.sleep(0.05)
            out["start"] = (time.monotonic() - started, lag.worst)
            await asyncio.sleep(5)  # housekeeping after the start settles
            out["start_lag"] = lag.worst
            out["start_gc"] = lag.worst_gc
        # Without the ticker: its 200 wake-ups a second would be most of an idle gateway's CPU.
        cpu, wall = cpu_seconds(), time.monotonic()
        await asyncio.sleep(idle_seconds)
        out["idle_cpu"] = 100 * (cpu_seconds() - cpu) / (time.monotonic() - wall)
        with LagMeter() as lag:
            loop = asyncio.get_running_loop()
            counts, delivered = [], []
            for n in range(changes):
                target = big_ids[n % len(big_ids)]
                uid = 1 + (n * 7919) % big_size
                before = watcher.counts(target)
                assert before is not None
                user, password = users[int(target)]
                events.clear()
                sent = await loop.run_in_executor(None, set_seen, dovecot, user, password, uid, True)
                counts.append(await poll(lambda t=target, b=before: watcher.counts(t) != b, sent, 30))
                delivered.append(await poll(lambda u=uid: any(e.entry.uid == u for _, e in events), sent, 30))
                await loop.run_in_executor(None, set_seen, dovecot, user, password, uid, False)
                await poll(lambda t=target, b=before: watcher.counts(t) == b, time.monotonic(), 30)
            out["changes"] = (counts, delivered, lag.worst)
            removed = []
            for n in range(max(1, changes // 5)):
                target = big_ids[n % len(big_ids)]
                uid = big_size - n // len(big_ids)  # each UID once: moved away for good
                before = watcher.counts(target)
                assert before is not None
                user, password = users[int(target)]
                sent = await loop.run_in_executor(None, move_away, dovecot, user, password, uid)
                removed.append(
                    await poll(lambda t=target, b=before: (watcher.counts(t) or b).total < b.total, sent, 30)
                )
            out["removed"] = (removed, lag.worst)
        out["menu"] = await menu_figures(dovecot, cfg, users, big_ids, big_size, changes, voicemails)
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        await watcher.close()
        await store.close()
    return out


async def menu_figures(
    dovecot: DevDovecot,
    cfg: Config,
    users: list[tuple[str, str]],
    big_ids: list[str],
    big_size: int,
    changes: int,
    voicemails: Voicemails,
) -> tuple[list[float], list[float], float]:
    """What a caller's menu sees: (a) a menu step's counts after a \\Seen by another client, timed from
    the STORE like a caller pressing a key right after it (one listing after another until the counts
    show it; its own pass, so the watcher's latency is not added to it); (b) one step's listing when
    nothing changed; the longest loop stall meanwhile."""
    loop = asyncio.get_running_loop()
    seen, steps = [], []
    with LagMeter() as lag:
        for n in range(changes):
            target = big_ids[n % len(big_ids)]
            box = cfg.mailboxes[target]
            uid = 1 + (n * 7907) % big_size
            before = (await voicemails.listing(box)).counts
            started = time.monotonic()
            await voicemails.listing(box)
            steps.append(time.monotonic() - started)
            user, password = users[int(target)]

            async def shows(b: Any = box, want: int = before.new - 1) -> bool:
                return (await voicemails.listing(b)).counts.new == want

            sent = await loop.run_in_executor(None, set_seen, dovecot, user, password, uid, True)
            seen.append(await poll(shows, sent, 30))
            await loop.run_in_executor(None, set_seen, dovecot, user, password, uid, False)

            async def back(b: Any = box, want: int = before.new) -> bool:
                return (await voicemails.listing(b)).counts.new == want

            await poll(back, time.monotonic(), 30)
    return seen, steps, lag.worst


def report(label: str, out: dict[str, Any]) -> None:
    new_s, new_lag, new_n = out["sync"]["new"]
    old_s, old_lag, _ = out["sync"]["old"]
    old_text = f"{old_s:.2f} s" if old_s is not None else "did not finish in 120 s"
    print(f"[{label}] initial sync of a {new_n}-voicemail folder:")
    print(f"    before (aioimaplib FetchCommand): {old_text}, longest loop stall {1000 * old_lag:.0f} ms")
    print(f"    after  (uid_fetch_all, ranges):   {new_s:.2f} s, longest loop stall {1000 * new_lag:.0f} ms")
    start_s, _ = out["start"]
    print(f"[{label}] gateway start: every folder synced after {start_s:.1f} s; longest stall "
          f"{1000 * out['start_lag']:.0f} ms (longest full GC pass {1000 * out['start_gc']:.0f} ms); "
          f"idle CPU {out['idle_cpu']:.2f} % of one core")  # fmt: skip
    counts, delivered, worst = out["changes"]
    seen, steps, menu_worst = out["menu"]
    for name, values in (
        ("watcher counts", counts),
        ("watcher event (notifier)", delivered),
        ("menu counts", seen),
    ):
        if values:
            p50, p95 = 1000 * statistics.median(values), 1000 * pct(values, 0.95)
            print(f"[{label}] \\Seen by another client -> {name}: p50 {p50:.0f} ms, p95 {p95:.0f} ms")
    removed, _ = out["removed"]
    if removed:
        p50, p95 = 1000 * statistics.median(removed), 1000 * pct(removed, 0.95)
        print(f"[{label}] voicemail deleted by another client (UID MOVE) -> watcher counts: "
              f"p50 {p50:.0f} ms, p95 {p95:.0f} ms over {len(removed)}")  # fmt: skip
    if steps:
        p50, p95 = 1000 * statistics.median(steps), 1000 * pct(steps, 0.95)
        print(f"[{label}] menu listing of a big folder, nothing changed: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    print(f"[{label}] longest loop stall during the changes: {1000 * worst:.0f} ms (watcher), "
          f"{1000 * menu_worst:.0f} ms (menu)")  # fmt: skip


def prepare(dovecot: DevDovecot, users: list[tuple[str, str]], big: list[int], size: int) -> None:
    for i in big:
        fill(dovecot, *users[i], size)


__all__ = ["Path", "measure", "prepare", "report"]
