"""Contracts with aioimaplib: every internal the connection type relies on, checked on a live session.

``mailstore/connection.py`` and ``mailstore/commands.py`` use parts of aioimaplib that are not its
documented API (pyproject.toml bounds the version). When an upgrade changes one of them, the test
named after it fails here, before anything subtler breaks in the watcher or the menu.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import os
from collections.abc import Callable

import aioimaplib
import pytest
from aioimaplib import aioimaplib as internals

from tests.fixtures.dovecot import MailClient
from vm2mail.devstack.dovecot import MAIL_GID, MAIL_UID, DevDovecot
from vm2mail.mailstore import aiofix
from vm2mail.mailstore.connection import ImapConnection
from vm2mail.mailstore.protocol import parse_fetch, untagged

Account = Callable[..., tuple[str, str]]


def test_command_table_accepts_registered_metadata_commands() -> None:
    """METADATA (and QRESYNC's UID FETCH) is added to ``aioimaplib.aioimaplib.Commands`` as
    ``Cmd(name, states, Exec.is_sync)``."""
    import vm2mail.mailstore.commands  # noqa: F401  (registers GETMETADATA/SETMETADATA)

    cmd = internals.Commands["GETMETADATA"]
    assert isinstance(cmd, internals.Cmd)
    assert cmd.valid_states == (internals.AUTH, internals.SELECTED)
    assert cmd.exec is internals.Exec.is_sync
    assert internals.Commands["SETMETADATA"].exec is internals.Exec.is_sync
    # QRESYNC's fetch runs sync under its own name (its VANISHED lines would be dropped otherwise), and
    # a Command's text is "tag name args" when it has no prefix: the wire reads "tag UID FETCH ...".
    assert internals.Commands["UID FETCH"].exec is internals.Exec.is_sync
    assert internals.Commands["UID FETCH"].valid_states == (internals.SELECTED,)

    async def text() -> str:
        return str(aioimaplib.Command("UID FETCH", "A1", "1:5", "(FLAGS)", loop=asyncio.get_running_loop()))

    assert asyncio.run(text()) == "A1 UID FETCH 1:5 (FLAGS)"
    assert internals.Commands["ENABLE"].exec is internals.Exec.is_sync


def test_command_takes_prefix_and_untagged_response_name() -> None:
    """``aioimaplib.Command(name, tag, *args, prefix=, untagged_resp_name=, loop=)``: plain UID FETCH."""
    params = inspect.signature(aioimaplib.Command).parameters
    for name in ("name", "tag", "args", "prefix", "untagged_resp_name", "loop"):
        assert name in params, name
    assert params["args"].kind is inspect.Parameter.VAR_POSITIONAL


def test_login_is_logged_as_the_redaction_filter_expects() -> None:
    """aioimaplib logs commands as ``Sending : ...`` on logger ``aioimaplib.aioimaplib``."""
    source = inspect.getsource(internals.IMAP4ClientProtocol.send)
    assert "Sending : " in source and "log.debug" in source
    assert internals.log.name == "aioimaplib.aioimaplib"


def test_live_session_internals(
    dovecot: DevDovecot, imap_account: Account, mail_client: Callable[[str, str], MailClient]
) -> None:
    """On a real session: ``client.protocol`` (new_tag, execute, loop, transport, capabilities,
    idle_queue), ``client._client_task``, ``client.tasks``, ``client._idle_waiter``, and a plain
    Command collecting FETCH literals as separate lines right after the line announcing them."""
    user, password = imap_account()
    client = mail_client(user, password)
    client.append("INBOX", b"Subject: one\r\nMessage-ID: <c1@x>\r\n\r\nbody\r\n")

    async def main() -> None:
        conn = await ImapConnection.open(dovecot.imap_config(), user, password)
        try:
            proto = conn.client.protocol
            assert isinstance(proto.idle_queue, asyncio.Queue)
            assert isinstance(proto.capabilities, (set, list, tuple)) and "IMAP4REV1" in {
                c.upper() for c in proto.capabilities
            }
            assert isinstance(proto.transport, asyncio.Transport)
            assert proto.loop is asyncio.get_running_loop()
            assert isinstance(conn.client._client_task, asyncio.Task)
            assert all(isinstance(t, asyncio.Future) for t in conn.client.tasks)
            assert await conn.select("INBOX")
            command = aioimaplib.Command(
                "FETCH",
                proto.new_tag(),
                "1:*",
                "(UID BODY.PEEK[HEADER.FIELDS (Subject)])",
                prefix="UID",
                untagged_resp_name="FETCH",
                loop=proto.loop,
            )
            response = await conn.command(proto.execute(command), "UID FETCH")
            lines = untagged(response)
            assert lines[0].endswith(b"}") and lines[1].startswith(b"Subject: one")
            [record] = parse_fetch(lines).values()
            assert record.literal is not None and record.literal.startswith(b"Subject: one")
            # IDLE: idle_start() returns the command's future, pushes land in idle_queue, idle_done() ends it.
            idle = await conn.guard(conn.client.idle_start(timeout=30), "IDLE")
            assert conn.client.has_pending_idle()
            client.append("INBOX", b"Subject: two\r\n\r\nbody\r\n")
            push = await asyncio.wait_for(proto.idle_queue.get(), 10)
            assert isinstance(push, list) and any(bytes(line).endswith(b"EXISTS") for line in push)
            # idle_start() arms ``client._idle_waiter`` (a TimerHandle); abort() cancels it when the
            # connection is dropped in IDLE, or the timer keeps the dead client for the IDLE period.
            assert isinstance(conn.client._idle_waiter, asyncio.TimerHandle)
            conn.client.idle_done()
            assert (await conn.guard(idle, "IDLE DONE")).result == "OK"
        finally:
            await conn.logout()
        assert conn.client._client_task.done()

    asyncio.run(main())


def test_logs_do_not_show_login_arguments(
    dovecot: DevDovecot, imap_account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    """The redaction filter matches what aioimaplib actually logs at LOGIN."""
    user, password = imap_account()

    async def main() -> None:
        conn = await ImapConnection.open(dovecot.imap_config(), user, password)
        await conn.logout()

    with caplog.at_level(logging.DEBUG, logger="aioimaplib.aioimaplib"):
        asyncio.run(main())
    sent = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Sending")]
    assert any("LOGIN (arguments redacted by vm2mail)" in m for m in sent)
    assert not any(password in r.getMessage() for r in caplog.records)


# sha256 of aioimaplib 2.0.3's IMAP4ClientProtocol._handle_responses, which mailstore/aiofix.py copies
# as a loop. A new aioimaplib changes this: compare the new function with the copy, then update both.
HANDLE_RESPONSES_SHA256 = "b85f6640b4ca5fe68483cf9c7ab007e5b4b1d5534718654e60d0894fefafc707"


def test_response_reader_copied_by_aiofix_is_unchanged() -> None:
    source = inspect.getsource(aiofix.ORIGINAL)
    assert hashlib.sha256(source.encode()).hexdigest() == HANDLE_RESPONSES_SHA256
    assert internals.IMAP4ClientProtocol._handle_responses is aiofix._handle_responses


def fill(dovecot: DevDovecot, user: str, client: MailClient, count: int) -> None:
    """``count`` small messages in Voicemail, written as Maildir files (seconds instead of minutes)."""
    client.create_folder("Voicemail")
    local, domain = user.split("@")
    cur = dovecot.mail_root / domain / local / "Maildir" / ".Voicemail" / "cur"
    for n in range(count):
        path = cur / f"1700000000.M{n}P1.test,S=40:2,"
        path.write_bytes(f"Subject: {n}\r\nMessage-ID: <{n}@x>\r\n\r\nhi\r\n".encode())
        os.chown(path, MAIL_UID, MAIL_GID)


def test_a_reply_of_thousands_of_short_lines_keeps_the_connection(
    dovecot: DevDovecot, imap_account: Account, mail_client: Callable[[str, str], MailClient]
) -> None:
    """One UID FETCH of 3,000 flag lines: ~1,000 lines per socket read, past aioimaplib's own
    recursive reader (RecursionError in data_received, connection lost); the loop in aiofix reads it."""
    user, password = imap_account()
    fill(dovecot, user, mail_client(user, password), 3000)

    async def main() -> None:
        conn = await ImapConnection.open(dovecot.imap_config(), user, password)
        try:
            assert await conn.select("Voicemail")
            records = await conn.uid_fetch("1:*", "(UID FLAGS)")
            assert len(records) == 3000 and conn.alive
            assert len(await conn.uid_search("ALL")) == 3000
        finally:
            await conn.logout()

    asyncio.run(main())
