"""Two processes, like two gateway hosts, race for the same notice of one voicemail hundreds of times."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier

from tests.e2e.harness import Stack
from tests.notify.conftest import at, client, drop, flags, voicemail
from vm2mail.config.model import ImapConfig, Mailbox
from vm2mail.mailstore.store import ImapStore
from vm2mail.notify.claim import CLAIMS_FOLDER, claim
from vm2mail.notify.policy import reminder_flag

ROUNDS = 300
MID = "<race-many@vm.example.com>"


def racer(imap: ImapConfig, box: Mailbox, uid: int, barrier: Barrier, out: Connection) -> None:
    """One claimant process: for each round, wait for the other at the barrier, then claim at once."""

    async def rounds() -> list[bool]:
        store = ImapStore(imap)
        won: list[bool] = []
        try:
            for k in range(1, ROUNDS + 1):
                await asyncio.to_thread(barrier.wait, 60)
                won.append(await claim(store, box, "Voicemail", uid, MID, (reminder_flag(k),)))
        finally:
            await store.close()
        return won

    try:
        out.send(asyncio.run(rounds()))
    except BaseException as exc:
        barrier.abort()  # release the other process instead of leaving it at the barrier
        out.send(repr(exc))
        raise


def test_two_processes_racing_never_both_win(notify_stack: Callable[..., Stack]) -> None:
    s = notify_stack()
    box = s.config.mailboxes["201"]
    uid = drop(s, "201", voicemail(message_id=MID, date=at(9, 0)), at(9, 0))
    ctx = multiprocessing.get_context("spawn")  # no fork of a threaded test process
    barrier = ctx.Barrier(2)
    pipes = [ctx.Pipe(duplex=False) for _ in range(2)]
    procs = [ctx.Process(target=racer, args=(s.config.imap, box, uid, barrier, send)) for _, send in pipes]
    for proc in procs:
        proc.start()
    try:
        results = []
        for receive, _ in pipes:
            assert receive.poll(120), "a racer did not finish"
            results.append(receive.recv())
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    first, second = results
    assert isinstance(first, list) and isinstance(second, list), results
    doubles = [k for k, (a, b) in enumerate(zip(first, second, strict=True), start=1) if a and b]
    nobody = [k for k, (a, b) in enumerate(zip(first, second, strict=True), start=1) if not (a or b)]
    assert doubles == [] and nobody == []
    assert 0 < sum(first) < ROUNDS  # both processes won some rounds: they really raced
    # Every notice is recorded on the voicemail once, and only the winners' markers are left.
    assert {reminder_flag(k) for k in range(1, ROUNDS + 1)} <= flags(s, "201", uid)
    assert len(client(s).messages(CLAIMS_FOLDER)) == ROUNDS
    with client(s).session() as imap:
        _, data = imap.status(CLAIMS_FOLDER, "(UIDNEXT)")
    appended = int(str(data[0]).rsplit("UIDNEXT ", 1)[1].split(")")[0]) - 1
    print(f"{ROUNDS} rounds, {appended - ROUNDS} with both markers appended (the loser's then removed)")
