"""One authenticated IMAP connection on aioimaplib: timeouts, STARTTLS, errors as MailStoreError."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import ssl
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import aioimaplib

from vm2mail.config.model import ImapConfig
from vm2mail.errors import MailStoreError
from vm2mail.mailstore import aiofix
from vm2mail.mailstore.commands import ImapCommands
from vm2mail.mailstore.folders import quote
from vm2mail.mailstore.protocol import parse_enabled, parse_list, status_text, untagged

log = logging.getLogger(__name__)

T = TypeVar("T")
SECURITIES = ("none", "starttls", "tls")


class _RedactLogin(logging.Filter):
    """Drop LOGIN arguments from aioimaplib's debug log: it masks the raw password, not its quoted form."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Sending") and " LOGIN " in message:
            record.msg, record.args = "Sending : LOGIN (arguments redacted by vm2mail)", ()
        return True


logging.getLogger("aioimaplib.aioimaplib").addFilter(_RedactLogin())
aiofix.install()  # a reply of ~1,000 short lines would otherwise end the connection (aiofix.py)


def ssl_context(cfg: ImapConfig) -> ssl.SSLContext:
    """Default certificate and host name verification; ``cfg.ca_file`` adds a trust anchor."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if cfg.ca_file is not None:
        ctx.load_verify_locations(cafile=str(cfg.ca_file))
    return ctx


response_text = status_text  # the name the rest of the package has used


class ImapConnection(ImapCommands):
    """An IMAP session in the authenticated or selected state.

    aioimaplib futures never complete once the server has said BYE or dropped the socket (FIELD-NOTES),
    so every command is raced against ``timeout_seconds`` and against the connection-lost callback;
    any failure marks the connection broken and the caller must discard it.
    """

    def __init__(self, cfg: ImapConfig, login: str) -> None:
        self.cfg = cfg
        self.login = login  # the login name, used in messages; never the password
        self.selected: str | None = None
        self.delimiter: str | None = "/"
        self.broken = False
        self.qresync = False  # RFC 7162 QRESYNC enabled: expunges are reported as VANISHED UIDs
        self.last_used = time.monotonic()
        self._lost = asyncio.Event()
        self._raw_transport: Any = None  # the TCP transport under a STARTTLS upgrade
        self.client: Any = None

    @property
    def where(self) -> str:
        return f"{self.cfg.host}:{self.cfg.port}"

    @property
    def alive(self) -> bool:
        return not (self.broken or self._lost.is_set())

    def _connection_lost(self, exc: Exception | None) -> None:
        self._lost.set()

    def error(self, message: str, *, broken: bool = True) -> MailStoreError:
        if broken:
            self.broken = True
        return MailStoreError(f"IMAP {self.where} ({self.login}): {message}", temporary=True)

    async def guard(self, awaitable: Awaitable[T], what: str) -> T:
        """Await an aioimaplib call with the configured timeout; fail at once if the connection drops."""
        if not self.alive:
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # never awaited now: no "coroutine was never awaited" warning later
            raise self.error(f"{what}: connection already closed")
        task = asyncio.ensure_future(awaitable)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait(
                {task, lost}, timeout=self.cfg.timeout_seconds, return_when=asyncio.FIRST_COMPLETED
            )
        except BaseException:
            task.cancel()
            raise
        finally:
            lost.cancel()
        if task not in done:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                # Our own cancellation (SIGTERM) arrived while the command wound down: the suppress
                # above must not turn it into a MailStoreError that a caller retries forever.
                self.broken = True
                raise asyncio.CancelledError
            reason = "connection closed by server" if self._lost.is_set() else "timed out"
            raise self.error(f"{what}: {reason}")
        try:
            return task.result()
        except ssl.SSLCertVerificationError as exc:
            raise self.error(f"{what}: TLS certificate not trusted ({exc.verify_message})") from exc
        except (TimeoutError, OSError, aioimaplib.AioImapException) as exc:
            raise self.error(f"{what}: {type(exc).__name__}: {exc}") from exc

    async def command(self, awaitable: Awaitable[Any], what: str, *, ok: tuple[str, ...] = ("OK",)) -> Any:
        """Run a command; a result other than ``ok`` raises MailStoreError (the connection stays usable)."""
        response = await self.guard(awaitable, what)
        if response.result not in ok:
            raise self.error(f"{what} failed: {response.result} {response_text(response)}", broken=False)
        return response

    # -- session setup ---------------------------------------------------------------------------------

    @classmethod
    async def open(cls, cfg: ImapConfig, login: str, password: str) -> ImapConnection:
        """Connect, secure the channel as ``cfg.security`` says, log in and learn the hierarchy delimiter."""
        conn = cls(cfg, login)
        try:
            await conn._open(password)
        except BaseException:
            conn.abort()
            raise
        return conn

    async def _open(self, password: str) -> None:
        await self.connect()
        try:
            response = await self.guard(self.client.login(quote(self.login), password), "LOGIN")
        except ValueError as exc:  # CR/LF/NUL in the password: never put it on the wire
            raise self.error("LOGIN: password contains CR, LF or NUL") from exc
        if response.result != "OK":
            text = response_text(response).replace(password, "***") if password else response_text(response)
            raise self.error(f"login as {self.login!r} refused: {text}")
        await self._learn_delimiter()
        if self.has_capability("QRESYNC"):
            await self._enable_qresync()

    async def _enable_qresync(self) -> None:
        """RFC 7162 §3.2.3 ``ENABLE QRESYNC``: a resync then learns expunged UIDs from the server
        (VANISHED) instead of listing every UID; unsolicited EXPUNGE becomes VANISHED too."""
        response = await self.execute("ENABLE", "QRESYNC", what="ENABLE QRESYNC", ok=("OK", "NO", "BAD"))
        self.qresync = response.result == "OK" and "QRESYNC" in parse_enabled(untagged(response))

    async def try_login(self, password: str) -> bool:
        """LOGIN on a connected session: True when accepted, False when refused (NO); MailStoreError
        when the server cannot tell (BAD, or RFC 5530 ``[UNAVAILABLE]``: its own trouble, such as
        Dovecot's "Temporary authentication failure", not a wrong password)."""
        response = await self.guard(self.client.login(quote(self.login), password), "LOGIN")
        if response.result == "OK":
            return True
        text = response_text(response).replace(password, "***") if password else response_text(response)
        if response.result != "NO" or "[UNAVAILABLE]" in text.upper():
            raise self.error(f"LOGIN: {response.result} {text}", broken=False)
        return False

    async def connect(self) -> None:
        """Open the socket and secure it (implicit TLS or STARTTLS) as ``cfg.security`` says; no login."""
        cfg = self.cfg
        if cfg.security not in SECURITIES:
            raise MailStoreError(
                f"unknown IMAP security {cfg.security!r} (tls, starttls or none)", temporary=False
            )
        ctx = ssl_context(cfg) if cfg.security != "none" else None
        self.client = aioimaplib.IMAP4(
            host=cfg.host,
            port=cfg.port,
            timeout=cfg.timeout_seconds,
            conn_lost_cb=self._connection_lost,
            ssl_context=ctx if cfg.security == "tls" else None,
        )
        await self.guard(self.client.wait_hello_from_server(), "connect")
        if cfg.security == "starttls":
            assert ctx is not None
            await self._starttls(ctx)

    async def _starttls(self, ctx: ssl.SSLContext) -> None:
        """RFC 3501 §6.2.1 STARTTLS, which aioimaplib lacks: upgrade the transport in place."""
        proto = self.client.protocol
        if "STARTTLS" not in proto.capabilities:
            # RFC 3501 §11.1: never fall back to plaintext when TLS was asked for.
            raise self.error("server does not offer STARTTLS; refusing to log in without TLS")
        command = aioimaplib.Command("STARTTLS", proto.new_tag(), loop=proto.loop)
        await self.command(proto.execute(command), "STARTTLS")
        loop = asyncio.get_running_loop()
        self._raw_transport = proto.transport
        transport = await self.guard(
            loop.start_tls(proto.transport, proto, ctx, server_hostname=self.cfg.host), "TLS handshake"
        )
        proto.transport = transport
        # RFC 3501 §6.2.1: capabilities learned before STARTTLS must be discarded.
        await self.guard(proto.capability(), "CAPABILITY")

    async def _learn_delimiter(self) -> None:
        # RFC 3501 §6.3.8: LIST "" "" returns the hierarchy delimiter of the root.
        response = await self.command(self.client.list('""', '""'), "LIST")
        for item in parse_list(untagged(response)):
            self.delimiter = item.delimiter
            break

    def has_capability(self, name: str) -> bool:
        return bool(self.client.has_capability(name))

    # -- teardown --------------------------------------------------------------------------------------

    def abort(self) -> None:
        """Drop the socket without LOGOUT (for broken connections)."""
        self.broken = True
        client = self.client
        if client is None:
            return
        # abort(), not close(): close() would wait for a TLS close_notify exchange that may never finish
        # (and leave the socket open if the loop ends first).
        for transport in (getattr(client.protocol, "transport", None), self._raw_transport):
            if transport is not None:
                transport.abort()
        if not client._client_task.done():
            client._client_task.cancel()
        # An IDLE the server never ended leaves aioimaplib's end-of-IDLE timer armed; it holds the whole
        # client (reader, buffers, protocol) for the IDLE period after the connection is gone.
        waiter = client._idle_waiter
        if waiter is not None:
            waiter.cancel()
            client._idle_waiter = None

    async def logout(self) -> None:
        """Polite LOGOUT (RFC 3501 §6.1.3), bounded by a short timeout, then close the socket."""
        if self.alive and self.client is not None:
            with contextlib.suppress(MailStoreError, asyncio.TimeoutError):
                await asyncio.wait_for(self.guard(self.client.logout(), "LOGOUT"), 2.0)
        self.abort()
        await asyncio.sleep(0)  # let the transports run their connection_lost and close the sockets

    def discard(self) -> None:
        """Drop the connection and the aioimaplib tasks (a pending IDLE) that would otherwise never end."""
        tasks = list(getattr(self.client, "tasks", ())) if self.client is not None else []
        self.abort()
        for task in tasks:
            task.cancel()
