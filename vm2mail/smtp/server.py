"""The SMTP ingress listener: aiosmtpd on the gateway's event loop, STARTTLS (RFC 3207), AUTH after TLS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import AnyStr

from aiosmtpd.smtp import SMTP, Envelope

from vm2mail.config.model import Config, SmtpIngressConfig
from vm2mail.jobs.spool import Spool
from vm2mail.metrics import SMTP_REPLY_SECONDS
from vm2mail.replies import SendSms
from vm2mail.smtp.handler import IngressHandler, VmEnvelope
from vm2mail.smtp.replies import EmailReplies

log = logging.getLogger(__name__)

# RFC 5321 §4.5.3.2.7 suggests at least 5 minutes idle time; PBXs send one message and quit.
TIMEOUT_SECONDS = 300
# The greeting names no software or version (aiosmtpd's default is "Python SMTP 1.4.6"): that only
# helps someone looking for a server with a known bug. RFC 5321 §4.2 asks for "ESMTP" in the banner.
IDENT = "ESMTP"
# aiosmtpd refuses a too-big MAIL FROM SIZE= (RFC 1870 §6.1) without an enhanced status code.
_SIZE_REFUSED = "552 Error: message size exceeds fixed maximum message size"
SIZE_REPLY = "552 5.3.4 Message size exceeds fixed maximum message size"  # RFC 3463 §3.4


class _NoLoginDataWarning(logging.Filter):
    """aiosmtpd 1.4 logs a deprecation warning at every AUTH; we read ``session.auth_data`` instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_NoLoginDataWarning())


def tls_context(ingress: SmtpIngressConfig) -> ssl.SSLContext | None:
    """Server-side context for STARTTLS; clients are not asked for certificates (aiosmtpd expects that)."""
    if ingress.tls_cert is None or ingress.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(ingress.tls_cert), str(ingress.tls_key))
    return context


class _Protocol(SMTP):
    """aiosmtpd's SMTP with our envelope type, remembering open sessions so ``close`` can end them."""

    def __init__(self, sessions: set[_Protocol], handler: IngressHandler, **kwargs: object) -> None:
        super().__init__(handler, **kwargs)  # type: ignore[arg-type]
        self._sessions = sessions

    def _create_envelope(self) -> Envelope:
        return VmEnvelope()

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str) and status == _SIZE_REFUSED:
            await super().push(SIZE_REPLY)
        else:
            await super().push(status)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._sessions.discard(self)
        super().connection_lost(error)

    async def smtp_DATA(self, arg: str) -> None:
        """RFC 5321 §4.1.1.4 DATA, read in 64 KiB blocks instead of aiosmtpd's line by line.

        A 60 s WAV is ~17,000 base64 lines: aiosmtpd's per-line loop costs the event loop ~100 ms per
        message, which every other session and the workers feel. Same replies as aiosmtpd (354, 552 after
        the whole message when it is too big, then the handler's reply); lines are not length-checked.
        """
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        content = await self._read_data()
        if content is None:
            await self.push("552 5.3.4 Error: Too much mail data")
            self.envelope = self._create_envelope()  # aiosmtpd's post-DATA state
            return
        self.envelope.content = content
        self.envelope.original_content = content
        with SMTP_REPLY_SECONDS.time():
            status = await self._call_handler_hook("DATA")
            self.envelope = self._create_envelope()
            await self.push(status)

    async def _read_data(self) -> bytes | None:
        """The message up to ``CRLF.CRLF``, dot-unstuffed (RFC 5321 §4.5.2); None beyond the size limit."""
        limit = self.data_size_limit
        buf = bytearray(b"\r\n")  # a message may end at once: ".\r\n" right after the 354
        scan, too_much = 0, False
        while (end := buf.find(b"\r\n.\r\n", scan)) < 0:
            chunk = await self._reader.read(65536)
            self._reset_timeout()  # a slow link sending a big message is not an idle client
            if not chunk:
                raise ConnectionResetError("connection closed during DATA")
            if limit and not too_much and len(buf) + len(chunk) > limit + 2:
                too_much = True  # keep reading to the end, but keep nothing: 552 afterwards
            if too_much:
                del buf[:-4]
            scan = max(0, len(buf) - 4)
            buf += chunk
        leftover = bytes(buf[end + 5 :])
        if leftover:  # the client did not wait for our reply: leave its next command in the stream
            self._reader._buffer[:0] = leftover  # type: ignore[attr-defined]
        if too_much:
            return None
        return bytes(buf[: end + 2].replace(b"\r\n..", b"\r\n.")[2:])


class SmtpIngress:
    """``await SmtpIngress(...).start()``; ``port`` is the bound port (0 in the config: any free one)."""

    def __init__(self, config: Callable[[], Config], spool: Spool, send_sms: SendSms) -> None:
        self.config = config
        ingress = config().smtp_ingress
        assert ingress is not None
        self.ingress = ingress
        replies = EmailReplies(config=config, send_sms=send_sms, root=Path(spool.root) / "replies")
        self.handler = IngressHandler(config, spool, replies)
        self._tls = tls_context(ingress)
        self._sessions: set[_Protocol] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    def _protocol(self) -> _Protocol:
        return _Protocol(
            self._sessions,
            self.handler,
            hostname=self.ingress.hostname,
            ident=IDENT,
            data_size_limit=self.ingress.max_message_bytes,
            tls_context=self._tls,
            auth_require_tls=True,  # AUTH is not even offered before STARTTLS (538 5.7.11 if tried)
            authenticator=self.handler.authenticate,
            timeout=TIMEOUT_SECONDS,
            loop=asyncio.get_running_loop(),
        )

    async def start(self, port: int | None = None) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol,
            host=self.ingress.listen_host,
            port=self.ingress.listen_port if port is None else port,
            reuse_address=True,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info(
            "smtp ingress on %s:%d for %s (STARTTLS %s)",
            self.ingress.listen_host,
            self.port,
            ",".join(self.ingress.domains),
            "on" if self._tls else "off",
        )
        return self.port

    async def close(self) -> None:
        """Stop listening and end open sessions; a message not yet given its ``250`` is retried later."""
        if self._server is None:
            return
        self._server.close()
        tasks = []
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
            if session._handler_coroutine is not None:
                tasks.append(session._handler_coroutine)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
