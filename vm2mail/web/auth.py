"""Web login: the mailbox's IMAP login and password checked by an IMAP LOGIN, with the menu's lockout.

There is no second user database: the IMAP server decides. Failed logins count towards the lockout
the phone menu keeps in METADATA (vm2mail.logins), so guessing by web and by phone share one budget
and every gateway instance sees the same lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from vm2mail.config.model import Config, Mailbox
from vm2mail.errors import MailStoreError
from vm2mail.logins import Logins
from vm2mail.mailstore.connection import ImapConnection

log = logging.getLogger(__name__)

RETRY_PAUSE_SECONDS = 0.5
T = TypeVar("T")


class Outcome(enum.Enum):
    OK = "ok"
    WRONG = "wrong"  # unknown login or wrong password: the browser is not told which
    LOCKED = "locked"
    UNAVAILABLE = "unavailable"  # the IMAP server could not be asked


async def read_once_more(read: Callable[[], Awaitable[T]], what: str) -> T:
    """``read()``, and once more after a short pause if IMAP refused it: right after a folder is first
    created, Dovecot 2.3 was seen answering GETMETADATA on another session with "Mailbox doesn't
    exist" once. A second refusal raises."""
    try:
        return await read()
    except MailStoreError as exc:
        log.info("web: %s not readable (%s); reading it again", what, exc)
        await asyncio.sleep(RETRY_PAUSE_SECONDS)
        return await read()


def mailbox_for_login(config: Config, login: str) -> Mailbox | None:
    """The (first) personal mailbox whose ``imap_user`` is ``login`` (case-insensitive)."""
    wanted = login.strip().lower()
    for mailbox in config.mailboxes.values():
        if not mailbox.is_group and mailbox.imap_user and mailbox.imap_user.lower() == wanted:
            return mailbox
    return None


async def imap_login_ok(config: Config, login: str, password: str) -> bool:
    """True when the IMAP server accepts LOGIN; MailStoreError when it cannot be asked."""
    if any(c in login + password for c in "\r\n\x00"):
        return False  # cannot be sent on the wire (RFC 3501 quoted strings), so cannot be right
    conn = ImapConnection(config.imap, login)
    try:
        await conn.connect()
        # RFC 5530 §3: [UNAVAILABLE] is the server's own trouble, not a wrong password: try_login
        # raises for it, so it never counts towards the lockout.
        return await conn.try_login(password)
    finally:
        with contextlib.suppress(Exception):
            await conn.logout()


class WebLogins:
    """Checks a browser's login; failures lock the mailbox exactly as wrong PINs do."""

    def __init__(self, config: Callable[[], Config], logins: Logins) -> None:
        self.config = config
        self.logins = logins

    async def check(self, login: str, password: str, *, client: str) -> tuple[Outcome, Mailbox | None]:
        config = self.config()
        mailbox = mailbox_for_login(config, login)
        if mailbox is None or not password:
            log.info("web login from %s for an unknown login refused", client)
            if password and mailbox is None:
                # Asked all the same and the answer ignored: the IMAP server's refusal (with its
                # auth_failure_delay) then takes as long as for a known login's wrong password, so
                # the reply's delay does not tell which logins have a mailbox here.
                with contextlib.suppress(MailStoreError):
                    await imap_login_ok(config, login, password)
            return Outcome.WRONG, None
        user = mailbox.imap_user
        assert user is not None  # mailbox_for_login matched the login on it
        try:
            if await self._locked(mailbox):
                log.warning("web login to locked mailbox %s from %s refused", mailbox.id, client)
                return Outcome.LOCKED, mailbox
            try:
                accepted = await imap_login_ok(config, user, password)
            except MailStoreError as exc:
                log.info("web login to mailbox %s: IMAP LOGIN not answered (%s); once more", mailbox.id, exc)
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
                accepted = await imap_login_ok(config, user, password)
            if accepted:
                log.info("web login to mailbox %s from %s", mailbox.id, client)
                return Outcome.OK, mailbox
            locked = await self.logins.record_failure(mailbox, f"web login from {client}")
        except MailStoreError as exc:
            log.warning("web login to mailbox %s: IMAP unavailable: %s", mailbox.id, exc)
            return Outcome.UNAVAILABLE, mailbox
        return (Outcome.LOCKED if locked else Outcome.WRONG), mailbox

    async def _locked(self, mailbox: Mailbox) -> bool:
        until = await read_once_more(
            lambda: self.logins.locked_until(mailbox), f"lockout of mailbox {mailbox.id}"
        )
        return bool(until)
