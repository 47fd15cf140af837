"""Race two processes for the same voicemail's notices on a local Dovecot: double claims and claim time.

Compares the claim the notifier uses (a marker message per notice, lowest UID wins: vm2mail/notify/
claim.py) with the RFC 7162 conditional STORE it replaced (``UID STORE uid (UNCHANGEDSINCE m)``, which
Dovecot 2.3 lets succeed twice). Each round both processes meet at a barrier and claim a new notice
(keyword) of the same message at once; a round where both won is a double claim. Prints the double
claims per method and p50/p95 of one claim as seen by a claimant. Figures are printed, never asserted.

    .venv/bin/python bench/claims.py [--rounds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import imaplib
import multiprocessing
import re
import shutil
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vm2mail.config.model import Defaults, ImapConfig, Mailbox
from vm2mail.devstack.dovecot import DevDovecot
from vm2mail.mailstore.connection import ImapConnection
from vm2mail.mailstore.store import ImapStore, Pool
from vm2mail.notify.claim import CLAIMS_FOLDER, claim

print = functools.partial(print, flush=True)

MID = "<bench-claims@bench.example>"
_MODSEQ = re.compile(rb"MODSEQ \((\d+)\)")


async def conditional_store(store: ImapStore, box: Mailbox, uid: int, flag: str) -> bool:
    """The replaced claim: read MODSEQ and flags, then STORE the keyword UNCHANGEDSINCE that MODSEQ."""

    async def op(conn: ImapConnection, pool: Pool) -> bool:
        await store.select(conn, pool, "Voicemail")
        response = await conn.command(conn.client.uid("fetch", str(uid), "(UID FLAGS MODSEQ)"), "FETCH")
        line = b" ".join(bytes(x) for x in response.lines[:-1])
        match = _MODSEQ.search(line)
        if flag.encode() in line or match is None:
            return False
        response = await conn.command(
            conn.client.uid(
                "store", str(uid), f"(UNCHANGEDSINCE {match.group(1).decode()})", "+FLAGS.SILENT", f"({flag})"
            ),
            "STORE",
        )
        return not any(b"[MODIFIED " in bytes(x) for x in response.lines)

    return await store.run(box, op, folder="Voicemail")


def racer(
    method: str, imap: ImapConfig, box: Mailbox, uid: int, rounds: int, barrier: Barrier, out: Connection
) -> None:
    async def run() -> tuple[list[bool], list[float]]:
        store = ImapStore(imap)
        won: list[bool] = []
        took: list[float] = []
        try:
            for k in range(1, rounds + 1):
                flag = f"${method.capitalize()}{k}"
                await asyncio.to_thread(barrier.wait, 60)
                started = time.perf_counter()
                if method == "store":
                    won.append(await conditional_store(store, box, uid, flag))
                else:
                    won.append(await claim(store, box, "Voicemail", uid, MID, (flag,)))
                took.append(time.perf_counter() - started)
        finally:
            await store.close()
        return won, took

    out.send(asyncio.run(run()))


def race(method: str, imap: ImapConfig, box: Mailbox, uid: int, rounds: int) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    pipes = [ctx.Pipe(duplex=False) for _ in range(2)]
    procs = [
        ctx.Process(target=racer, args=(method, imap, box, uid, rounds, barrier, send)) for _, send in pipes
    ]
    for proc in procs:
        proc.start()
    (won_a, took_a), (won_b, took_b) = (receive.recv() for receive, _ in pipes)
    for proc in procs:
        proc.join()
    doubles = sum(1 for a, b in zip(won_a, won_b, strict=True) if a and b)
    nobody = sum(1 for a, b in zip(won_a, won_b, strict=True) if not (a or b))
    took = sorted(took_a + took_b)
    p95 = took[int(len(took) * 0.95)]
    print(
        f"{method:>6}: {rounds} rounds, {doubles} double claims, {nobody} with no winner; "
        f"claim p50 {statistics.median(took) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vm2mail-bench-claims-"))
    dovecot = DevDovecot(root / "dovecot")
    try:
        user, password = "race@bench.example", "pw-race"
        dovecot.add_user(user, password)
        dovecot.start()
        imap = imaplib.IMAP4(dovecot.host, dovecot.port)
        imap.login(user, password)
        imap.create("Voicemail")
        raw = f"Message-ID: {MID}\r\nSubject: race\r\n\r\nhi\r\n".encode()
        _, data = imap.append("Voicemail", None, None, raw)
        imap.logout()
        match = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
        assert match is not None
        d = Defaults()
        box = Mailbox(
            id="201",
            name="Bench",
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
        config = dovecot.imap_config(timeout=60)
        for method in ("store", "marker"):
            race(method, config, box, int(match.group(1)), args.rounds)
        imap = imaplib.IMAP4(dovecot.host, dovecot.port)
        imap.login(user, password)
        _, status = imap.status(CLAIMS_FOLDER, "(UIDNEXT)")
        imap.logout()
        appended = int(re.findall(rb"UIDNEXT (\d+)", status[0] or b"")[0]) - 1
        print(f"marker: {appended - args.rounds} of {args.rounds} rounds had both markers appended")
    finally:
        dovecot.destroy()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
