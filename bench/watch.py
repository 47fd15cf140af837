"""Watch many mailboxes on a local Dovecot: the watcher's memory, idle CPU and \\Seen → count latency;
then big folders (bench/bigfolders.py), each part with and without CONDSTORE.

One IDLE connection per watched folder (one Dovecot imap process each). Prints the gateway process's
RSS, Dovecot's total RSS, the CPU the watcher uses while nothing happens (% of one core), and p50/p95
of the time from a \\Seen change made by another IMAP client (STORE sent) to the updated count.
Timings are printed, never asserted. Each Dovecot IDLE session takes an inotify instance of the one
mail uid: run as root, the bench raises ``fs.inotify.max_user_instances``/``max_user_watches`` to fit
(and prints that it did); otherwise it prints the sysctl to run.

    .venv/bin/python bench/watch.py [--mailboxes 1000] [--changes 200] [--idle-seconds 30]
        [--big 10] [--big-size 10000] [--big-changes 50] [--modes condstore,plain]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import functools
import imaplib
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bigfolders
from vm2mail import longlived
from vm2mail.config.model import (
    Config,
    Defaults,
    GpgConfig,
    ImapConfig,
    Mailbox,
    ServerConfig,
    TwilioConfig,
    WatcherConfig,
)
from vm2mail.devstack.dovecot import DevDovecot, drop_condstore
from vm2mail.mailstore.store import ImapStore
from vm2mail.watcher import Watcher

print = functools.partial(print, flush=True)


class BenchDovecot(DevDovecot):
    """The dev Dovecot with process limits raised above the number of watched folders."""

    limit: int = 1000
    condstore: bool = True

    def _prepare(self) -> None:
        super()._prepare()
        if not self.condstore:
            drop_condstore(self.config_file)
        text = self.config_file.read_text()
        text = text.replace("default_process_limit = 1000", f"default_process_limit = {self.limit}")
        text = text.replace(
            "mail_max_userip_connections = 1000", f"mail_max_userip_connections = {self.limit}"
        )
        self.config_file.write_text(text)


def rss_mb(pid: int | str = "self", field: str = "VmRSS", where: str = "status") -> float:
    try:
        for line in Path(f"/proc/{pid}/{where}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def voicemail(n: int) -> bytes:
    return (
        f"From: +4930123456 <voicemail@bench.example>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\n"
        f"Subject: Voicemail\r\nMessage-ID: <bench{n}@bench.example>\r\nX-Vm2mail-Kind: voicemail\r\n"
        f"X-Vm2mail-Caller: +4930123456\r\nX-Vm2mail-Duration: 11\r\nX-Vm2mail-Mailbox: {n}\r\n\r\nhi\r\n"
    ).encode()


def seed(dovecot: DevDovecot, user: str, password: str, n: int) -> None:
    imap = imaplib.IMAP4(dovecot.host, dovecot.port)
    try:
        imap.login(user, password)
        imap.create('"Voicemail"')
        imap.subscribe('"Voicemail"')
        imap.append('"Voicemail"', None, None, voicemail(n))
    finally:
        imap.logout()


def set_seen(dovecot: DevDovecot, user: str, password: str, seen: bool) -> float:
    """STORE ±\\Seen on the mailbox's voicemail as another client; the monotonic time it was sent."""
    return bigfolders.set_seen(dovecot, user, password, 1, seen)


def config(root: Path, dovecot: DevDovecot, users: list[tuple[str, str]]) -> Config:
    d = Defaults()
    boxes = {
        str(i): Mailbox(
            id=str(i),
            name=f"Bench {i}",
            imap_user=user,
            imap_password=password,
            ring_seconds=d.ring_seconds,
            max_message_seconds=d.max_message_seconds,
            min_message_seconds=d.min_message_seconds,
            folder=d.folder,
            language=d.language,
            timezone=d.timezone,
            missed_call_email=d.missed_call_email,
            private_subject=d.private_subject,
        )
        for i, (user, password) in enumerate(users)
    }
    return Config(
        source=root / "bench.yaml",
        server=ServerConfig(
            public_url="https://bench.example",
            spool_dir=root / "spool",
            mail_domain="bench.example",
            secret_key="b" * 32,
        ),
        twilio=TwilioConfig(account_sid="AC" + "0" * 32, auth_token="bench"),
        imap=ImapConfig(host=dovecot.host, port=dovecot.port, security="none", timeout_seconds=60),
        gpg=GpgConfig(home=root / "gnupg"),
        defaults=d,
        mailboxes=boxes,
        watcher=WatcherConfig(),
    )


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(
    dovecot: BenchDovecot, cfg: Config, users: list[tuple[str, str]], args: argparse.Namespace
) -> None:
    store = ImapStore(cfg.imap)
    watcher = Watcher(lambda: cfg, store)
    longlived.settle_start()  # as `vm2mail serve` does once the gateway is up
    ids = list(cfg.mailboxes)
    started = time.monotonic()
    task = asyncio.create_task(watcher.run())
    try:
        deadline = started + 900
        while sum(watcher.counts(i) is not None for i in ids) < len(ids):
            if time.monotonic() > deadline:
                synced = sum(watcher.counts(i) is not None for i in ids)
                raise SystemExit(f"only {synced} of {len(ids)} folders synced in 900 s")
            await asyncio.sleep(0.2)
        print(f"all {len(ids)} folders synced and in IDLE after {time.monotonic() - started:.1f} s")
        await asyncio.sleep(5)  # let startup housekeeping and the reload loop settle
        # PSS: shared pages (the imap binary, libraries) divided among the processes sharing them.
        dovecot_pss = sum(rss_mb(pid, "Pss", "smaps_rollup") for pid in dovecot._children())
        print(
            f"gateway RSS: {rss_mb():.0f} MB; "
            f"Dovecot, all {len(dovecot._children())} processes: {dovecot_pss:.0f} MB PSS"
        )
        cpu, wall = cpu_seconds(), time.monotonic()
        await asyncio.sleep(args.idle_seconds)
        idle = 100 * (cpu_seconds() - cpu) / (time.monotonic() - wall)
        print(f"idle CPU over {args.idle_seconds} s: {idle:.2f} % of one core")

        loop = asyncio.get_running_loop()
        latencies: list[float] = []
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            for n in range(args.changes):
                box = ids[(n * 7919) % len(ids)]  # spread over the mailboxes
                before = watcher.counts(box)
                assert before is not None
                seen = before.new == 1
                user, password = users[int(box)]
                sent = await loop.run_in_executor(pool, set_seen, dovecot, user, password, seen)
                while (now := watcher.counts(box)) is not None and (now.new == 0) != seen:
                    if time.monotonic() - sent > 30:
                        raise SystemExit(f"change {n} in mailbox {box} not seen in 30 s")
                    await asyncio.sleep(0.001)
                latencies.append(time.monotonic() - sent)
        latencies.sort()
        p50 = statistics.median(latencies)
        p95 = latencies[int(0.95 * (len(latencies) - 1))]
        print(
            f"\\Seen -> count over {len(latencies)} changes: p50 {1000 * p50:.0f} ms, "
            f"p95 {1000 * p95:.0f} ms, max {1000 * latencies[-1]:.0f} ms"
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await watcher.close()
        await store.close()


def run_mode(args: argparse.Namespace, condstore: bool) -> None:
    """One Dovecot (with or without CONDSTORE), the accounts, both measurements, the report."""
    label = "CONDSTORE" if condstore else "no CONDSTORE"
    root = Path(tempfile.mkdtemp(prefix="vm2mail-bench-watch-"))
    dovecot = BenchDovecot(root / "dovecot")
    dovecot.limit = args.mailboxes + 200
    dovecot.condstore = condstore
    try:
        users = [(f"w{i}@bench.example", f"pw-{i}") for i in range(args.mailboxes)]
        for user, password in users:
            dovecot.add_user(user, password)
        dovecot.start()
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: seed(dovecot, *users[i], i), range(len(users))))
        print(
            f"[{label}] {len(users)} accounts with one voicemail each in {time.monotonic() - started:.1f} s"
        )
        cfg = config(root, dovecot, users)
        if args.changes:
            asyncio.run(measure(dovecot, cfg, users, args))
        if args.big:
            big = list(range(0, args.mailboxes, max(1, args.mailboxes // args.big)))[: args.big]
            started = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda i: bigfolders.fill(dovecot, *users[i], args.big_size), big))
            print(
                f"[{label}] {len(big)} of them with {args.big_size} more voicemails each "
                f"in {time.monotonic() - started:.1f} s"
            )
            out = asyncio.run(
                bigfolders.measure(
                    dovecot,
                    cfg,
                    users,
                    [str(i) for i in big],
                    args.big_size,
                    args.big_changes,
                    args.idle_seconds,
                )
            )
            bigfolders.report(label, out)
    finally:
        dovecot.destroy()
        shutil.rmtree(root, ignore_errors=True)


def raise_inotify_limits(mailboxes: int) -> None:
    """Give Dovecot's mail uid an inotify instance per IDLE session (raised only when run as root).

    Each IDLE imap process takes one inotify instance, and all of them run as the one mail uid; the
    kernel's default of 128 instances per uid would leave the rest polling every
    ``mailbox_idle_check_interval`` (30 s) instead of pushing changes. Dovecot's documented remedy is
    to raise the sysctl, which a real server with many IDLE clients needs too.
    """
    wanted = {"max_user_instances": 2 * mailboxes + 256, "max_user_watches": 8 * mailboxes + 8192}
    for name, want in wanted.items():
        path = Path("/proc/sys/fs/inotify") / name
        have = int(path.read_text())
        if have >= want:
            continue
        try:
            path.write_text(str(want))
            print(f"raised fs.inotify.{name} from {have} to {want} (as root; one instance per IDLE session)")
        except OSError:
            print(
                f"warning: fs.inotify.{name} is {have}: Dovecot will poll every 30 s instead of pushing "
                f"changes; run `sysctl -w fs.inotify.{name}={want}` as root"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=200, help="\\Seen changes on one-voicemail folders")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--big", type=int, default=10, help="mailboxes that get --big-size more voicemails")
    parser.add_argument("--big-size", type=int, default=10000)
    parser.add_argument("--big-changes", type=int, default=50, help="\\Seen changes on the big folders")
    parser.add_argument("--modes", default="condstore,plain", help="condstore, plain (no CONDSTORE) or both")
    args = parser.parse_args()
    raise_inotify_limits(args.mailboxes)
    modes = args.modes.split(",")
    if len(modes) == 1:
        run_mode(args, condstore=modes[0] == "condstore")
        return
    # One process per mode: what one gateway froze or left behind must not show in the next one's RSS.
    argv, rest = [], iter(sys.argv[1:])
    for arg in rest:
        if arg == "--modes":
            next(rest, None)  # its value
        elif not arg.startswith("--modes="):
            argv.append(arg)
    for mode in modes:
        subprocess.run([sys.executable, __file__, *argv, f"--modes={mode}"], check=True)


if __name__ == "__main__":
    main()
