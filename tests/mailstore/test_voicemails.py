"""mailstore.voicemails on a real Dovecot: listings by headers, flags and moves by other clients, counts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any, TypeVar

from tests.fixtures.dovecot import MailClient
from vm2mail.config.model import Mailbox
from vm2mail.devstack.dovecot import DevDovecot
from vm2mail.mailstore import ImapStore
from vm2mail.mailstore.protocol import parse_fetch as parse_records
from vm2mail.mailstore.voicemails import FLAGGED, NOTIFIED, SEEN, Voicemails, counts, parse_fetch, uid_set

T = TypeVar("T")
Account = Callable[..., tuple[str, str]]
Client = Callable[[str, str], MailClient]


def mailbox(user: str, password: str, folder: str = "Voicemail") -> Mailbox:
    return Mailbox(
        id="201", name="Anna", imap_user=user, imap_password=password, ring_seconds=20,
        max_message_seconds=300, min_message_seconds=1, folder=folder, language="en-US",
        timezone="Europe/Berlin", missed_call_email=True, private_subject=False,
    )  # fmt: skip


def message(headers: dict[str, str], body: str = "Hello.\n") -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "voicemail@vm.example.com"
    msg["To"] = "anna@example.com"
    msg["Subject"] = "Voicemail"
    for name, value in headers.items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


def vm(mid: str, date: str, caller: str = "+4930123456", **extra: str) -> bytes:
    headers = {
        "Message-ID": f"<{mid}@vm.example.com>",
        "Date": date,
        "X-Vm2mail-Kind": "voicemail",
        "X-Vm2mail-Caller": caller,
        "X-Vm2mail-Called": "+4930999000",
        "X-Vm2mail-Duration": "42",
        "X-Vm2mail-Mailbox": "201",
        "X-Vm2mail-Call-Id": f"CA{mid}",
    }
    headers.update(extra)
    return message(headers)


def asterisk(date: str) -> bytes:
    return message(
        {
            "Message-ID": "<asterisk-1@pbx>",
            "X-Asterisk-VM-Message-Num": "1",
            "X-Asterisk-VM-Caller-ID-Num": "+15550100",
            "X-Asterisk-VM-Caller-ID-Name": "Bob",
            "X-Asterisk-VM-Duration": "17",
            "X-Asterisk-VM-Orig-date": date,
        }
    )


def run(store: ImapStore, coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    async def main() -> T:
        try:
            return await coro()
        finally:
            await store.close()

    return asyncio.run(main())


def setup(
    dovecot: DevDovecot, imap_account: Account, mail_client: Client
) -> tuple[Mailbox, MailClient, ImapStore]:
    user, password = imap_account()
    client = mail_client(user, password)
    client.create_folder("Voicemail")
    return mailbox(user, password), client, ImapStore(dovecot.imap_config("none"))


def test_listing_reads_voicemails_and_asterisk_skips_other_and_broken_mail(
    dovecot: DevDovecot, imap_account: Account, mail_client: Client
) -> None:
    box, client, store = setup(dovecot, imap_account, mail_client)
    late = client.append("Voicemail", vm("late", "Mon, 23 Nov 2026 10:00:00 +0100", **{
        "X-Vm2mail-Caller-Name": "=?utf-8?q?J=C3=BCrgen?="}))  # fmt: skip
    client.append(
        "Voicemail", message({"Message-ID": "<plain@x>", "Date": "Mon, 23 Nov 2026 08:00:00 +0000"})
    )
    early = client.append("Voicemail", vm("early", "Sun, 22 Nov 2026 09:00:00 +0000", caller="anonymous"))
    missed = client.append(
        "Voicemail", vm("missed", "Sun, 22 Nov 2026 12:00:00 +0000", **{"X-Vm2mail-Kind": "missed-call"})
    )
    client.append(
        "Voicemail", vm("broken1", "Sun, 22 Nov 2026 12:00:00 +0000", **{"X-Vm2mail-Duration": "lots"})
    )
    client.append("Voicemail", vm("broken2", "Sun, 22 Nov 2026 12:00:00 +0000", **{"X-Vm2mail-Kind": "fax"}))
    client.append("Voicemail", b"X-Vm2mail-Kind: voicemail\r\nX-Vm2mail-Duration: \xff\xfe\r\n\r\nbody\r\n")
    pbx = client.append("Voicemail", asterisk("Sat, 21 Nov 2026 18:30:00 +0000"), flags="\\Seen \\Flagged")

    listing = run(store, lambda: Voicemails(store).listing(box))

    assert [e.uid for e in listing.entries] == [pbx, early, missed, late]  # oldest first, by Date
    by_uid = {e.uid: e for e in listing.entries}
    assert by_uid[late].caller == "+4930123456" and by_uid[late].caller_name == "Jürgen"
    assert by_uid[late].duration == 42 and by_uid[late].kind == "voicemail" and by_uid[late].new
    assert by_uid[late].date == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert by_uid[late].message_id == "<late@vm.example.com>" and by_uid[late].call_id == "CAlate"
    assert by_uid[late].called == "+4930999000" and by_uid[late].mailbox == "201"
    assert not by_uid[late].encrypted and by_uid[late].size > 100
    assert by_uid[early].caller is None  # withheld
    assert by_uid[missed].kind == "missed-call"
    assert by_uid[pbx].kind == "asterisk" and by_uid[pbx].caller == "+15550100"
    assert by_uid[pbx].caller_name == "Bob" and by_uid[pbx].duration == 17 and by_uid[pbx].saved
    assert counts(listing).__dict__ == {"new": 3, "heard": 0, "saved": 1, "total": 4}
    assert [e.uid for e in listing.new] == [early, missed, late] and [e.uid for e in listing.old] == [pbx]


def test_changes_by_another_client_show_in_the_next_listing(
    dovecot: DevDovecot, imap_account: Account, mail_client: Client
) -> None:
    box, client, store = setup(dovecot, imap_account, mail_client)
    first = client.append("Voicemail", vm("a", "Sun, 22 Nov 2026 09:00:00 +0000"))
    second = client.append("Voicemail", vm("b", "Sun, 22 Nov 2026 10:00:00 +0000"))
    voicemails = Voicemails(store)

    async def scenario() -> None:
        before = await voicemails.listing(box)
        assert [e.new for e in before.entries] == [True, True]
        assert await voicemails.listing(box) == before  # unchanged folder: same view

        client.set_flags("Voicemail", first, "\\Seen")
        after_seen = await voicemails.listing(box)
        assert [e.new for e in after_seen.entries] == [False, True]
        assert after_seen.highestmodseq is not None and before.highestmodseq is not None
        assert after_seen.highestmodseq > before.highestmodseq

        client.move("Voicemail", second, "Trash")
        third_vm = vm("c", "Sun, 22 Nov 2026 11:00:00 +0000")
        third = client.append("Voicemail", third_vm, flags="\\Seen \\Flagged")
        after_move = await voicemails.listing(box)
        assert [e.uid for e in after_move.entries] == [first, third]
        assert counts(after_move) == counts(after_move).__class__(new=0, heard=1, saved=1, total=2)

        await voicemails.set_flags(box, [first, third], add=(FLAGGED, NOTIFIED), remove=(SEEN,))
        flags = {m.uid: m.flags for m in client.messages("Voicemail")}
        assert flags[first] == flags[third] == {FLAGGED, NOTIFIED}
        assert all(e.new and e.saved for e in (await voicemails.listing(box)).entries)

        # A voicemail dated earlier than all others (a PBX import) slots in first, not last.
        earliest = client.append("Voicemail", vm("z", "Sat, 21 Nov 2026 07:00:00 +0000"), flags="\\Seen")
        updated = await voicemails.listing(box)
        assert [e.uid for e in updated.entries] == [earliest, first, third]
        assert counts(updated).__dict__ == {"new": 2, "heard": 1, "saved": 0, "total": 3}

        # A fresh Voicemails (another gateway instance) reads the same state from scratch.
        fresh = await Voicemails(store).listing(box)
        assert fresh.entries == updated.entries and counts(fresh) == counts(updated)

    run(store, scenario)


def test_move_to_trash_and_back_entry_fetch_and_gone(
    dovecot: DevDovecot, imap_account: Account, mail_client: Client
) -> None:
    box, client, store = setup(dovecot, imap_account, mail_client)
    raw = vm("a", "Sun, 22 Nov 2026 09:00:00 +0000")
    uid = client.append("Voicemail", raw)
    voicemails = Voicemails(store)

    async def scenario() -> None:
        entry = await voicemails.entry(box, uid)
        assert entry is not None and entry.message_id == "<a@vm.example.com>"
        body = await voicemails.fetch(box, uid)
        assert body is not None and body.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")
        trash = await voicemails.trash_folder(box)
        assert trash == "Trash"
        in_trash = await voicemails.move(box, uid, "Voicemail", trash)
        assert in_trash is not None
        assert await voicemails.entry(box, uid) is None and await voicemails.fetch(box, uid) is None
        assert await voicemails.move(box, uid, "Voicemail", trash) is None  # already gone
        assert (await voicemails.listing(box)).entries == ()
        assert [m.uid for m in client.messages("Trash")] == [in_trash]
        assert not client.messages("Trash")[0].seen  # fetch used BODY.PEEK
        back = await voicemails.move(box, in_trash, trash, "Voicemail")
        assert back is not None and [e.uid for e in (await voicemails.listing(box)).entries] == [back]

    run(store, scenario)


def test_append_with_flags_and_expunge_only_those(
    dovecot: DevDovecot, imap_account: Account, mail_client: Client
) -> None:
    box, client, store = setup(dovecot, imap_account, mail_client)
    voicemails = Voicemails(store)
    other = client.append("Voicemail", vm("other", "Sun, 22 Nov 2026 09:00:00 +0000"), flags="\\Deleted")

    async def scenario() -> None:
        uids = [
            await voicemails.append(
                box, "Voicemail/Old", vm(m, "Sun, 22 Nov 2026 09:00:00 +0000"), flags=(SEEN,)
            )
            for m in ("x", "y")
        ]
        assert "Voicemail/Old" in client.list_folders()
        assert all(m.seen for m in client.messages("Voicemail/Old"))
        await voicemails.expunge(box, uids[:1], "Voicemail/Old")
        assert [m.uid for m in client.messages("Voicemail/Old")] == uids[1:]
        await voicemails.expunge(box, [], "Voicemail")
        assert [m.uid for m in client.messages("Voicemail")] == [other]  # its \Deleted is not ours

    run(store, scenario)


def test_listing_survives_a_dovecot_restart(
    dovecot: DevDovecot, imap_account: Account, mail_client: Client
) -> None:
    box, client, store = setup(dovecot, imap_account, mail_client)
    uid = client.append("Voicemail", vm("a", "Sun, 22 Nov 2026 09:00:00 +0000"))
    voicemails = Voicemails(store)

    async def scenario() -> None:
        assert len((await voicemails.listing(box)).entries) == 1
        await asyncio.to_thread(dovecot.restart)
        client.set_flags("Voicemail", uid, "\\Seen")
        [entry] = (await voicemails.listing(box)).entries
        assert not entry.new

    run(store, scenario)


def test_parse_fetch_literal_lines_as_aioimaplib_delivers_them() -> None:
    lines: list[bytes] = [
        b'1 FETCH (UID 7 FLAGS (\\Seen $Vm2mailNotified) INTERNALDATE "23-Nov-2026 12:25:15 +0000" '
        b"RFC822.SIZE 905 BODY[HEADER.FIELDS (X-VM2MAIL-KIND CONTENT-TYPE)] {99}",
        bytearray(
            b"X-Vm2mail-Kind: missed-call\r\nContent-Type: multipart/encrypted;\r\n"
            b' protocol="application/pgp-encrypted"\r\n\r\n'
        ),
        b")",
        b"2 FETCH (FLAGS (\\Seen))",  # unsolicited, no UID: ignored
        b'3 FETCH (UID 9 FLAGS () INTERNALDATE "23-Nov-2026 12:25:15 +0000" RFC822.SIZE 33 '
        b"BODY[HEADER.FIELDS (X-VM2MAIL-KIND)] {2}",
        bytearray(b"\r\n"),
        b")",
        b"Fetch completed (0.001 + 0.000 secs).",
    ]
    [entry] = parse_fetch(lines)
    assert entry.uid == 7 and entry.kind == "missed-call" and entry.encrypted and not entry.new
    assert entry.flags == {SEEN, NOTIFIED} and entry.size == 905 and entry.caller is None
    assert entry.date == datetime(2026, 11, 23, 12, 25, 15, tzinfo=UTC)  # no Date: INTERNALDATE
    assert uid_set([5, 1, 2, 3, 9, 10]) == "1:3,5,9:10"


def test_flags_lines_between_full_records_keep_every_message_apart() -> None:
    """A flags re-read (without CONDSTORE, one short line per message) parses like any FETCH."""
    lines: list[bytes] = [
        b"1 FETCH (UID 3 FLAGS (\\Seen \\Recent $Vm2mailNotified))",
        b"2 FETCH (UID 4 RFC822.SIZE 12 BODY[HEADER.FIELDS (X-VM2MAIL-KIND)] {2}",
        bytearray(b"\r\n"),
        b")",
        b"3 fetch (uid 5 flags ())",
        b"4 FETCH (UID 6 FLAGS (\\Flagged) MODSEQ (42))",
        b"5 FETCH (FLAGS (\\Seen))",  # unsolicited, no UID: ignored
    ]
    records = parse_records(lines)
    assert sorted(records) == [3, 4, 5, 6]
    assert records[3].flags == {SEEN, NOTIFIED} and records[3].literal is None
    assert records[4].size == 12 and records[4].literal == b"\r\n" and records[4].flags is None
    assert records[5].flags == frozenset()
    assert records[6].flags == {FLAGGED} and records[6].modseq == 42
