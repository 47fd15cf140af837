"""Fixtures for watcher tests: mailboxes on fresh Dovecot accounts and a running Watcher."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest

from tests.fixtures.dovecot import MailClient
from vm2mail.config import Config
from vm2mail.devstack.dovecot import DevDovecot
from vm2mail.mailstore.store import ImapStore
from vm2mail.watcher import Watcher, WatchEvent

_ids = itertools.count(1)


@dataclass
class Setup:
    config: Config
    clients: dict[str, MailClient]  # mailbox id -> the owner's mail client


def voicemail(
    *,
    mailbox: str = "201",
    message_id: str | None = None,
    date: datetime | None = None,
    kind: str = "voicemail",
    caller: str = "+4930123456",
    extra: str = "",
) -> bytes:
    """A voicemail e-mail as the gateway writes it (headers that matter to the watcher, a short body)."""
    mid = message_id or f"<RE{next(_ids):032x}@vm.example.com>"
    when = format_datetime(date or datetime.now(UTC))
    return (
        f"From: {caller} <voicemail@vm.example.com>\r\nTo: user@example.com\r\nDate: {when}\r\n"
        f"Subject: Voicemail from {caller}\r\nMessage-ID: {mid}\r\nX-Vm2mail-Kind: {kind}\r\n"
        f"X-Vm2mail-Caller: {caller}\r\nX-Vm2mail-Duration: 11\r\nX-Vm2mail-Mailbox: {mailbox}\r\n"
        f"{extra}Content-Type: text/plain\r\n\r\nA voicemail.\r\n"
    ).encode()


def plain_mail(subject: str = "Lunch?") -> bytes:
    return (
        f"From: friend@example.com\r\nTo: user@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <m{next(_ids)}@example.com>\r\n\r\nHi.\r\n"
    ).encode()


@pytest.fixture
def setup(
    make_config: Callable[..., Config],
    dovecot: DevDovecot,
    imap_account: Callable[[], tuple[str, str]],
    mail_client: Callable[[str, str], MailClient],
) -> Callable[..., Setup]:
    """``setup({"201": {...mailbox keys}, "300": {"members": [...]}}, watcher={...})``."""

    def factory(boxes: dict[str, dict[str, Any]] | None = None, **overrides: Any) -> Setup:
        mailboxes: dict[str, Any] = {}
        clients: dict[str, MailClient] = {}
        for n, (box, spec) in enumerate((boxes or {"201": {}}).items(), start=1):
            if "members" in spec:
                mailboxes[box] = {"name": f"Group {box}", "numbers": [f"+1555000{3000 + n}"], **spec}
                continue
            user, password = imap_account()
            mailboxes[box] = {
                "name": f"User {box}",
                "email": user,
                "imap_user": user,
                "imap_password": password,
                "numbers": [f"+1555000{2000 + n}"],
                **spec,
            }
            clients[box] = mail_client(user, password)
        imap = dovecot.imap_config("none")
        config = make_config(
            replace_mailboxes=True,
            mailboxes=mailboxes,
            imap={"host": imap.host, "port": imap.port, "security": "none", "timeout_seconds": 5},
            **overrides,
        )
        return Setup(config=config, clients=clients)

    return factory


@contextlib.asynccontextmanager
async def watching(config: Config | Callable[[], Config]) -> AsyncIterator[tuple[Watcher, list[WatchEvent]]]:
    """A running Watcher (and the events it published) for the block; its store is closed after."""
    current = config if callable(config) else (lambda: config)
    store = ImapStore(current().imap)
    watcher = Watcher(current, store)
    events: list[WatchEvent] = []

    async def collect(event: WatchEvent) -> None:
        events.append(event)

    watcher.subscribe(collect)
    task = asyncio.create_task(watcher.run())
    try:
        yield watcher, events
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await watcher.close()
        await store.close()


async def until(predicate: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    """Poll ``predicate`` until true; fail with ``what`` after ``timeout`` (a deadline, not a timing)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s: {what} ({predicate.__doc__ or ''})")
        await asyncio.sleep(0.05)


async def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a blocking MailClient call off the loop, so the watcher keeps running meanwhile."""
    return await asyncio.to_thread(fn, *args, **kwargs)
