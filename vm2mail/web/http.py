"""HTTP plumbing of the web inbox: one error type mapped to JSON replies, security headers, Range."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from vm2mail.errors import MailStoreError, Vm2mailError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class WebError(Exception):
    """A refusal with its HTTP status, a stable code the page translates, and an English message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


def api(handler: Handler) -> Handler:
    """The one place where failures become replies: refusals as given, the mail store down as 503."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except WebError as exc:
            return error_response(exc.status, exc.code, exc.message)
        except MailStoreError as exc:
            log.warning("web %s %s: mail store unavailable: %s", request.method, request.path, exc)
            return error_response(503, "unavailable", "The mail server is not reachable; try again soon.")
        except Vm2mailError as exc:
            log.warning("web %s %s: %s", request.method, request.path, exc)
            return error_response(502, "failed", "The request could not be completed.")

    return wrapped


def security_headers(csp: str) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """``on_response_prepare`` hook: CSP and friends on everything under /inbox/, no caching of the API."""

    async def prepare(request: web.Request, response: web.StreamResponse) -> None:
        if not request.path.startswith("/inbox"):
            return
        headers = response.headers
        headers["Content-Security-Policy"] = csp
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["X-Frame-Options"] = "DENY"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        headers["Permissions-Policy"] = "microphone=(self), camera=(), geolocation=()"
        if not request.path.startswith("/inbox/static/"):
            headers["Cache-Control"] = "no-store"

    return prepare


def ranged(request: web.Request, body: bytes, content_type: str) -> web.Response:
    """``body`` whole, or the one byte range asked for (RFC 9110 §14): 206, or 416 when unsatisfiable."""
    size = len(body)
    headers = {"Accept-Ranges": "bytes"}
    wanted = request.headers.get("Range")
    match = _RANGE.match(wanted.strip()) if wanted else None
    if wanted is None or match is None or not any(match.groups()):
        # RFC 9110 §14.2: a Range we do not understand (several ranges, other units) is ignored.
        return web.Response(body=body, content_type=content_type, headers=headers)
    first, last = match.groups()
    if first:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    else:  # "bytes=-N": the last N bytes
        start, end = max(0, size - int(last)), size - 1
    if start >= size or start > end:
        headers["Content-Range"] = f"bytes */{size}"
        return web.Response(status=416, headers=headers)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return web.Response(status=206, body=body[start : end + 1], content_type=content_type, headers=headers)
