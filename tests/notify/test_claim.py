"""The IMAP claim (marker messages, lowest UID wins): of several gateways racing, one wins."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tests.e2e.harness import Stack
from tests.notify.conftest import at, client, drop, flags, voicemail
from vm2mail.mailstore.store import ImapStore
from vm2mail.mailstore.voicemails import NOTIFIED
from vm2mail.notify.claim import CLAIMS_FOLDER, KEEP_DAYS, claim, prune, release

MID = "<claim-1@vm.example.com>"


def test_one_of_many_concurrent_claims_wins(notify_stack: Callable[..., Stack]) -> None:
    s = notify_stack()
    box = s.config.mailboxes["201"]
    uid = drop(s, "201", voicemail(message_id=MID, date=at(9, 0)), at(9, 0))

    async def scenario() -> list[bool]:
        stores = [ImapStore(s.config.imap) for _ in range(6)]
        try:
            return list(
                await asyncio.gather(*(claim(st, box, "Voicemail", uid, MID, (NOTIFIED,)) for st in stores))
            )
        finally:
            for st in stores:
                await st.close()

    results = asyncio.run(scenario())
    assert results.count(True) == 1
    assert NOTIFIED in flags(s, "201", uid)
    # The losers took their markers back; the claims folder exists but stays out of mail clients' view.
    assert len(client(s).messages(CLAIMS_FOLDER)) == 1
    assert CLAIMS_FOLDER not in client(s).subscribed()


def test_claim_refused_after_seen_and_release_reopens(notify_stack: Callable[..., Stack]) -> None:
    s = notify_stack()
    box = s.config.mailboxes["201"]
    mid = "<claim-2@vm.example.com>"
    uid = drop(s, "201", voicemail(message_id=mid, date=at(9, 0)), at(9, 0))
    gone = uid + 100

    async def scenario() -> tuple[bool, bool, bool, bool]:
        store = ImapStore(s.config.imap)
        try:
            won = await claim(store, box, "Voicemail", uid, mid, ("$Vm2mailReminded1",))
            assert len(client(s).messages(CLAIMS_FOLDER)) == 1
            await release(store, box, "Voicemail", uid, mid, ("$Vm2mailReminded1",))
            assert client(s).messages(CLAIMS_FOLDER) == []
            client(s).set_flags("Voicemail", uid, "\\Seen")
            after_seen = await claim(store, box, "Voicemail", uid, mid, ("$Vm2mailReminded1",))
            seen_ok = await claim(store, box, "Voicemail", uid, mid, (NOTIFIED,), unseen=False)
            missing = await claim(store, box, "Voicemail", gone, "<gone@vm.example.com>", (NOTIFIED,))
            return won, after_seen, seen_ok, missing
        finally:
            await store.close()

    assert asyncio.run(scenario()) == (True, False, True, False)
    assert "$Vm2mailReminded1" not in flags(s, "201", uid)


def test_markers_older_than_keep_days_are_pruned_recent_ones_stay(
    notify_stack: Callable[..., Stack],
) -> None:
    s = notify_stack()
    box = s.config.mailboxes["201"]
    mid = "<claim-3@vm.example.com>"
    uid = drop(s, "201", voicemail(message_id=mid, date=at(9, 0)), at(9, 0))
    old = datetime.now(UTC) - timedelta(days=KEEP_DAYS + 2)

    async def scenario() -> tuple[bool, int, bool]:
        store = ImapStore(s.config.imap)
        try:
            assert await prune(store, box) == 0  # nothing claimed yet: no folder is created for it
            assert CLAIMS_FOLDER not in client(s).list_folders()
            won = await claim(store, box, "Voicemail", uid, mid, (NOTIFIED,))
            marker = b"Message-ID: <stale@claims.vm2mail.invalid>\r\nSubject: claim\r\n\r\nold\r\n"
            client(s).append(CLAIMS_FOLDER, marker, date=old)  # a marker from days ago
            gone = await prune(store, box)
            again = await claim(store, box, "Voicemail", uid, mid, (NOTIFIED,))
            return won, gone, again
        finally:
            await store.close()

    assert asyncio.run(scenario()) == (True, 1, False)
    [kept] = client(s).messages(CLAIMS_FOLDER)  # today's marker stays
    assert b"claims.vm2mail.invalid" in kept.raw and b"<stale@" not in kept.raw
