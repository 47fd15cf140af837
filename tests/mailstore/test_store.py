"""ImapStore against a real Dovecot: idempotent delivery, folders, TLS modes, master user, failures, pool."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.fixtures.dovecot import MailClient
from vm2mail.config.model import ImapConfig, Mailbox
from vm2mail.devstack.dovecot import DevDovecot
from vm2mail.errors import MailStoreError
from vm2mail.mailstore import ImapStore

T = TypeVar("T")
Account = Callable[..., tuple[str, str]]
Client = Callable[[str, str], MailClient]
WHEN = datetime(2024, 3, 5, 14, 7, 9, tzinfo=timezone(timedelta(hours=1)))


def run(coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(coro())


def mailbox(user: str, password: str | None = None, folder: str = "Voicemail") -> Mailbox:
    return Mailbox(
        id="201", name="Anna", imap_user=user, imap_password=password, ring_seconds=20,
        max_message_seconds=300, min_message_seconds=1, folder=folder, language="en-US",
        timezone="Europe/Berlin", missed_call_email=True, private_subject=False,
    )  # fmt: skip


def voicemail(message_id: str, subject: str = "Voicemail from +15550100") -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "voicemail@gw.example"
    msg["To"] = "anna@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg.set_content("You have a new voicemail.\n")
    return msg.as_bytes()


async def deliver_once(store: ImapStore, box: Mailbox, mid: str, folder: str = "Voicemail") -> int:
    try:
        return await store.deliver(box, folder, voicemail(mid), message_id=mid, internal_date=WHEN)
    finally:
        await store.close()


def test_delivers_unseen_with_internal_date_exactly_once(
    dovecot: DevDovecot, imap_account: Account, mail_client: Client
) -> None:
    user, password = imap_account()
    box = mailbox(user, password)
    mid = "<RE0001@gw.example>"

    async def scenario() -> tuple[int, int]:
        store = ImapStore(dovecot.imap_config())
        try:
            first = await store.deliver(box, "Voicemail", voicemail(mid), message_id=mid, internal_date=WHEN)
            again = await store.deliver(box, "Voicemail", voicemail(mid), message_id=mid, internal_date=WHEN)
            return first, again
        finally:
            await store.close()

    first, again = run(scenario)
    assert first == again
    [msg] = mail_client(user, password).messages("Voicemail")
    assert msg.uid == first
    assert not msg.seen and msg.flags == frozenset()
    assert msg.internal_date == WHEN
    assert msg.raw == voicemail(mid)


def test_message_id_match_is_exact(dovecot: DevDovecot, imap_account: Account) -> None:
    user, password = imap_account()
    box = mailbox(user, password)

    async def scenario() -> tuple[int, int, int | None, int | None]:
        store = ImapStore(dovecot.imap_config())
        try:
            a = await store.deliver(
                box, "Voicemail", voicemail("<xa@gw>"), message_id="<xa@gw>", internal_date=WHEN
            )
            b = await store.deliver(
                box, "Voicemail", voicemail("<a@gw>"), message_id="<a@gw>", internal_date=WHEN
            )
            missing = await store.find_message_id(box, "Voicemail", "<zz@gw>")
            found = await store.find_message_id(box, "Voicemail", "<a@gw>")
            return a, b, missing, found
        finally:
            await store.close()

    a, b, missing, found = run(scenario)
    assert a != b
    assert missing is None
    assert found == b


def test_sees_message_appended_by_another_client_on_a_pooled_connection(
    dovecot: DevDovecot, imap_account: Account, mail_client: Client
) -> None:
    """A crash after APPEND and a retry later must not duplicate, even when the folder is already selected."""
    user, password = imap_account()
    box = mailbox(user, password)
    client = mail_client(user, password)

    async def scenario() -> tuple[int, int]:
        store = ImapStore(dovecot.imap_config())
        try:
            await store.deliver(
                box, "Voicemail", voicemail("<one@gw>"), message_id="<one@gw>", internal_date=WHEN
            )
            # Another gateway instance (here: a plain client) appends while our connection sits selected.
            uid = await asyncio.to_thread(client.append, "Voicemail", voicemail("<two@gw>"))
            again = await store.deliver(
                box, "Voicemail", voicemail("<two@gw>"), message_id="<two@gw>", internal_date=WHEN
            )
            return uid, again
        finally:
            await store.close()

    uid, again = run(scenario)
    assert again == uid
    assert len(client.messages("Voicemail")) == 2


@pytest.mark.parametrize("folder", ["Voicemail", "Sprachnachrichten Übersicht/Grüße & Ansagen", "語音信箱"])
def test_creates_and_subscribes_missing_folder(
    dovecot: DevDovecot, imap_account: Account, mail_client: Client, folder: str
) -> None:
    user, password = imap_account()
    uid = run(
        lambda: deliver_once(ImapStore(dovecot.imap_config()), mailbox(user, password), "<f@gw>", folder)
    )
    client = mail_client(user, password)
    assert folder in client.list_folders()
    assert folder in client.subscribed()
    assert [m.uid for m in client.messages(folder)] == [uid]


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_modes_with_private_ca(
    dovecot: DevDovecot, imap_account: Account, mail_client: Client, security: str
) -> None:
    user, password = imap_account()
    cfg = dovecot.imap_config(security)
    assert cfg.ca_file is not None
    uid = run(lambda: deliver_once(ImapStore(cfg), mailbox(user, password), f"<{security}@gw>"))
    assert [m.uid for m in mail_client(user, password).messages("Voicemail")] == [uid]

    async def ping() -> None:
        await ImapStore(cfg).ping()

    run(ping)


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_untrusted_certificate_is_refused(dovecot: DevDovecot, imap_account: Account, security: str) -> None:
    user, password = imap_account()
    cfg = dataclasses.replace(dovecot.imap_config(security), ca_file=None)  # system store only
    with pytest.raises(MailStoreError, match="certificate") as info:
        run(lambda: deliver_once(ImapStore(cfg), mailbox(user, password), "<untrusted@gw>"))
    assert info.value.temporary


def test_starttls_refuses_server_without_starttls(tmp_path: Path) -> None:
    """security=starttls must never fall back to plaintext: point it at a port that speaks no STARTTLS."""

    logins: list[bytes] = []

    async def scenario() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                writer.write(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake ready\r\n")
                while line := await reader.readline():
                    tag = line.split(b" ", 1)[0]
                    if b"CAPABILITY" in line.upper():
                        writer.write(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n")
                    elif b"LOGIN" in line.upper():
                        logins.append(line)
                        writer.write(tag + b" NO no\r\n")
                    else:
                        writer.write(tag + b" OK done\r\n")
                    await writer.drain()
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        cfg = ImapConfig(host="127.0.0.1", port=port, security="starttls", timeout_seconds=5)
        try:
            with pytest.raises(MailStoreError, match="STARTTLS"):
                await deliver_once(ImapStore(cfg), mailbox("anna", "secret"), "<x@gw>")
        finally:
            server.close()
            await server.wait_closed()

    run(scenario)
    assert logins == []


def test_master_user_delivers_into_users_folder(
    dovecot: DevDovecot, imap_account: Account, mail_client: Client
) -> None:
    user, password = imap_account()
    store = ImapStore(dovecot.imap_config("starttls", master=True))
    uid = run(lambda: deliver_once(store, mailbox(user, None), "<master@gw>"))
    [msg] = mail_client(user, password).messages("Voicemail")
    assert msg.uid == uid


def test_wrong_password_names_user_not_password(
    dovecot: DevDovecot, imap_account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user, _ = imap_account()
    wrong = 'Not"The\\Password-93'  # needs quoting on the wire, which aioimaplib's log mask misses
    with pytest.raises(MailStoreError) as info:
        run(lambda: deliver_once(ImapStore(dovecot.imap_config()), mailbox(user, wrong), "<pw@gw>"))
    assert user in str(info.value)
    assert wrong not in str(info.value)
    assert "Password-93" not in caplog.text
    assert info.value.temporary


def test_wrong_master_password_is_refused(dovecot: DevDovecot, imap_account: Account) -> None:
    user, _ = imap_account()
    cfg = dataclasses.replace(dovecot.imap_config(master=True), master_password="wrong-master")
    with pytest.raises(MailStoreError, match=f"{user}\\*gateway") as info:
        run(lambda: deliver_once(ImapStore(cfg), mailbox(user, None), "<m@gw>"))
    assert "wrong-master" not in str(info.value)


def test_concurrent_deliveries_share_a_bounded_pool(
    dovecot: DevDovecot, imap_account: Account, mail_client: Client
) -> None:
    user, password = imap_account()
    box = mailbox(user, password)

    async def scenario() -> tuple[list[int], int]:
        store = ImapStore(dovecot.imap_config())
        try:
            ids = [f"<c{i}@gw>" for i in range(12)]
            uids = await asyncio.gather(
                *(
                    store.deliver(box, "Voicemail", voicemail(m), message_id=m, internal_date=WHEN)
                    for m in ids
                )
            )
            pooled = sum(len(pool.idle) for pool in store._pools.values())
            return list(uids), pooled
        finally:
            await store.close()

    uids, pooled = run(scenario)
    assert len(set(uids)) == 12
    assert 1 <= pooled <= 4
    assert sorted(m.uid for m in mail_client(user, password).messages("Voicemail")) == sorted(uids)


def test_server_down_is_temporary_and_pool_recovers_after_restart(
    tmp_path: Path, mail_client: Client
) -> None:
    server = DevDovecot(tmp_path / "dc")
    server.add_user("rita@example.com", "pw-rita")
    server.start()
    box = mailbox("rita@example.com", "pw-rita")
    try:

        async def scenario() -> tuple[int, MailStoreError, int]:
            store = ImapStore(server.imap_config("starttls", timeout=5))
            try:
                first = await store.deliver(box, "Voicemail", voicemail("<r1@gw>"), message_id="<r1@gw>",
                                            internal_date=WHEN)  # fmt: skip
                await asyncio.to_thread(server.stop)
                with pytest.raises(MailStoreError) as info:
                    await store.deliver(box, "Voicemail", voicemail("<r2@gw>"), message_id="<r2@gw>",
                                        internal_date=WHEN)  # fmt: skip
                with pytest.raises(MailStoreError):
                    await store.ping()
                await asyncio.to_thread(server.start)
                second = await store.deliver(box, "Voicemail", voicemail("<r2@gw>"), message_id="<r2@gw>",
                                             internal_date=WHEN)  # fmt: skip
                return first, info.value, second
            finally:
                await store.close()

        first, error, second = run(scenario)
        assert error.temporary
        assert first != second
        client = MailClient(server, "rita@example.com", "pw-rita")
        assert [m.uid for m in client.messages("Voicemail")] == [first, second]
    finally:
        server.stop()


def test_pooled_connection_dropped_by_server_is_replaced(tmp_path: Path) -> None:
    """A restart between deliveries leaves a dead pooled connection; the next delivery must not fail."""
    server = DevDovecot(tmp_path / "dc")
    server.add_user("sam@example.com", "pw-sam")
    server.start()
    box = mailbox("sam@example.com", "pw-sam")
    try:

        async def scenario() -> list[int]:
            store = ImapStore(server.imap_config("tls", timeout=5))
            try:
                uids = [await store.deliver(box, "Voicemail", voicemail("<s1@gw>"), message_id="<s1@gw>",
                                            internal_date=WHEN)]  # fmt: skip
                await asyncio.to_thread(server.restart)
                uids.append(await store.deliver(box, "Voicemail", voicemail("<s2@gw>"), message_id="<s2@gw>",
                                                internal_date=WHEN))  # fmt: skip
                return uids
            finally:
                await store.close()

        assert len(set(run(scenario))) == 2
    finally:
        server.stop()


def test_connection_refused_is_temporary() -> None:
    cfg = ImapConfig(host="127.0.0.1", port=1, security="none", timeout_seconds=5)
    with pytest.raises(MailStoreError) as info:
        run(lambda: deliver_once(ImapStore(cfg), mailbox("x@example.com", "pw"), "<x@gw>"))
    assert info.value.temporary


def test_naive_internal_date_is_rejected(dovecot: DevDovecot, imap_account: Account) -> None:
    user, password = imap_account()

    async def scenario() -> None:
        await ImapStore(dovecot.imap_config()).deliver(
            mailbox(user, password),
            "Voicemail",
            b"x",
            message_id="<n@gw>",
            internal_date=datetime(2024, 1, 1),
        )

    with pytest.raises(ValueError, match="aware"):
        run(scenario)
