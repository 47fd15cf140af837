"""Structured logging: logfmt (key=value) or one JSON object per line, each record carrying its call/job id.

The call id and job id come from context variables set where a request or job starts (the webhook
guard, ``Pipeline.handle``), so log messages need not repeat them; asyncio tasks and
``asyncio.to_thread`` copy the context, so work started from there carries the ids too.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator

CALL_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("vm2mail_call_id", default=None)
JOB_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("vm2mail_job_id", default=None)
MESSAGE_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("vm2mail_message_id", default=None)
CONTEXT = (("call_id", CALL_ID), ("job_id", JOB_ID), ("message_id", MESSAGE_ID))
FORMATS = ("text", "json")


@contextlib.contextmanager
def context(
    *, call_id: str | None = None, job_id: str | None = None, message_id: str | None = None
) -> Iterator[None]:
    """Within the block, every log record of this task carries the given ids (None leaves one unchanged)."""
    tokens = [
        (var, var.set(value))
        for var, value in ((CALL_ID, call_id), (JOB_ID, job_id), (MESSAGE_ID, message_id))
        if value
    ]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Copies the context ids onto each record (``record.call_id`` ...), None where unknown."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in CONTEXT:
            if getattr(record, name, None) is None:  # an explicit extra={"call_id": ...} wins
                setattr(record, name, var.get())
        return True


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, str]:
    entry = {"ts": _timestamp(record), "level": record.levelname.lower(), "logger": record.name}
    for name, var in CONTEXT:
        value = getattr(record, name, None) or var.get()
        if value:
            entry[name] = str(value)
    return entry


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, call_id/job_id/message_id when known, msg, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry = _fields(record)
        entry["msg"] = record.getMessage()
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _logfmt_value(value: str) -> str:
    # logfmt (https://brandur.org/logfmt): bare when no space, quote or '='; else a JSON-style string.
    if value and not any(c in value for c in ' "=\\\n\r\t'):
        return value
    return json.dumps(value, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """logfmt: ``ts=… level=info logger=… call_id=CA… msg="…"``; a traceback follows on its own lines."""

    def format(self, record: logging.LogRecord) -> str:
        entry = _fields(record)
        entry["msg"] = record.getMessage()
        line = " ".join(f"{key}={_logfmt_value(value)}" for key, value in entry.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def formatter(fmt: str) -> logging.Formatter:
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}, not {fmt!r}")
    return JsonFormatter() if fmt == "json" else TextFormatter()


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``setup`` installs; ``set_format`` changes only handlers of this class."""


def setup(fmt: str = "text", level: int = logging.INFO) -> None:
    """Log to stderr (journald/docker collect it) in ``fmt`` (``server.log_format``)."""
    handler = _Handler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log would print every webhook URL with its query (caller numbers): keep it quiet.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedHttpFilter) for f in server.filters):
        server.addFilter(MalformedHttpFilter())


class MalformedHttpFilter(logging.Filter):
    """aiohttp logs every malformed request (a scanner, a bad client) at ERROR with a traceback.

    That is the client's fault and aiohttp has answered 400: one INFO line naming the problem, so
    the error log and alerts stay for our own faults.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg, record.args = (
                "malformed HTTP request refused: %s",
                (" ".join(str(exc.message).split())[:200],),
            )
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
        return True


def set_format(fmt: str) -> bool:
    """Switch the handlers ``setup`` installed to ``fmt`` (on reload); False when there were none."""
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, _Handler)]
    for handler in handlers:
        handler.setFormatter(formatter(fmt))
    return bool(handlers)
