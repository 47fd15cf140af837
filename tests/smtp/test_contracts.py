"""Contracts with aiosmtpd: every internal ``smtp/server.py`` relies on, checked on the installed version.

The ingress overrides ``smtp_DATA`` (block reads instead of aiosmtpd's per-line loop) and reaches into
the protocol's reader, envelope factory, hook caller, timeout and handler task. pyproject.toml bounds
aiosmtpd's version; when an upgrade changes one of these, the test named after it fails here.
"""

from __future__ import annotations

import asyncio
import inspect
import logging

from aiosmtpd import smtp as aiosmtpd_smtp
from aiosmtpd.smtp import SMTP, Envelope

from vm2mail.smtp.server import _Protocol


def _source(name: str) -> str:
    return inspect.getsource(getattr(SMTP, name))


def test_envelopes_come_from_create_envelope() -> None:
    """``_create_envelope()`` makes every envelope (VmEnvelope is ours), also after RSET and DATA."""
    assert "self._set_post_data_state()" in _source("_set_rset_state")
    assert "self.envelope = self._create_envelope()" in _source("_set_post_data_state")
    assert inspect.signature(SMTP._create_envelope).return_annotation in (Envelope, "Envelope")


def test_data_override_matches_aiosmtpd_data() -> None:
    """``smtp_DATA(self, arg)`` is the command method; it checks HELO and AUTH the way ours does."""
    assert list(inspect.signature(SMTP.smtp_DATA).parameters) == ["self", "arg"]
    assert list(inspect.signature(_Protocol.smtp_DATA).parameters) == ["self", "arg"]
    data = _source("smtp_DATA").replace("'", '"')
    assert "await self.check_helo_needed()" in data
    assert 'await self.check_auth_needed("DATA")' in data
    assert 'await self._call_handler_hook("DATA")' in data
    assert inspect.iscoroutinefunction(SMTP.check_helo_needed)
    assert inspect.iscoroutinefunction(SMTP.check_auth_needed)
    assert inspect.iscoroutinefunction(SMTP._call_handler_hook)
    assert list(inspect.signature(SMTP._call_handler_hook).parameters)[:2] == ["self", "command"]


def test_reader_is_a_stream_reader_with_a_bytearray_buffer() -> None:
    """``self._reader`` is the StreamReader of the session; its ``_buffer`` takes back pipelined bytes."""
    assert "self._reader = reader" in _source("_cb_client_connected")

    async def put_back() -> bytes:
        reader = asyncio.StreamReader()
        assert isinstance(reader._buffer, bytearray)  # type: ignore[attr-defined]
        reader.feed_data(b"QUIT\r\n")
        reader._buffer[:0] = b"NOOP\r\n"  # type: ignore[attr-defined]
        return await reader.readuntil(b"\r\n")

    assert asyncio.run(put_back()) == b"NOOP\r\n"


def test_timeout_and_handler_task() -> None:
    """``_reset_timeout()`` restarts the idle timer; ``_handler_coroutine`` is the session task (close)."""
    assert list(inspect.signature(SMTP._reset_timeout).parameters) == ["self", "duration"]
    assert "self._handler_coroutine" in inspect.getsource(SMTP.__init__)
    assert "self._handler_coroutine = self.loop.create_task(" in _source("connection_made")


def test_login_data_warning_text_and_logger() -> None:
    """The filter in smtp/server.py drops this deprecation warning from logger ``mail.log``."""
    assert aiosmtpd_smtp.log is logging.getLogger("mail.log")
    assert "login_data is deprecated" in inspect.getsource(aiosmtpd_smtp)
