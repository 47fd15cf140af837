"""What the web inbox's routes share: their services and the session guard every API route passes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from vm2mail.config.model import Config, Mailbox
from vm2mail.mailstore.greetings import Greetings
from vm2mail.playback import Playback
from vm2mail.replies import ReplySender
from vm2mail.web import session as sessions
from vm2mail.web.assets import Assets
from vm2mail.web.auth import WebLogins
from vm2mail.web.folder import VIEWS, InboxFolders
from vm2mail.web.http import WebError
from vm2mail.web.live import LiveHub

log = logging.getLogger(__name__)


@dataclass
class WebDeps:
    """What the inbox needs from the composition root (vm2mail.app)."""

    config: Callable[[], Config]
    folders: InboxFolders
    generations: sessions.Generations
    logins: WebLogins
    playback: Playback
    greetings: Greetings
    hub: LiveHub
    # Twilio for the callback (TwilioRest.connect) and the at-most-once SMS sender of e-mail replies.
    connect: Callable[[str, str, str], Awaitable[str]] | None = None
    replies: ReplySender | None = None
    assets: Assets = field(default_factory=Assets.load)
    closing: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class Caller:
    """An authenticated request: the session's mailbox."""

    mailbox: Mailbox
    session: sessions.Session


def client_address(request: web.Request) -> str:
    return request.remote or "?"


async def authenticate(deps: WebDeps, request: web.Request, *, change: bool = False) -> Caller:
    """The session of the request's cookie; a state change must also carry its CSRF token."""
    config = deps.config()
    if not config.web.enabled:
        raise WebError(404, "disabled", "The web inbox is not enabled.")
    cookie = request.cookies.get(sessions.COOKIE)
    found = sessions.read(config.server.secret_key, cookie) if cookie else None
    mailbox = config.mailboxes.get(found.mailbox_id) if found is not None else None
    if found is None or mailbox is None:
        if cookie:
            log.info("web: refused a forged or expired session cookie from %s", client_address(request))
        raise WebError(401, "session", "Please log in (no session, or it expired).")
    if found.generation != await deps.generations.current(mailbox):
        raise WebError(401, "session", "This session was logged out; please log in again.")
    if change and not sessions.csrf_ok(config.server.secret_key, found, request.headers.get("X-CSRF-Token")):
        log.warning("web: mailbox %s: state change without a valid CSRF token refused", mailbox.id)
        raise WebError(403, "csrf", "Missing or wrong CSRF token; reload the page.")
    return Caller(mailbox, found)


def uid_of(request: web.Request) -> int:
    text = request.match_info["uid"]
    if not text.isdigit() or not 0 < int(text) < 2**32:  # RFC 3501 §2.3.1.1: nz-number, 32 bits
        raise WebError(400, "bad-uid", f"{text!r} is not a message number.")
    return int(text)


def view_of(request: web.Request, default: str = "all") -> str:
    view = request.query.get("view", default)
    if view not in VIEWS:
        raise WebError(400, "bad-view", f"view must be one of {', '.join(VIEWS)}.")
    return view


async def json_body(request: web.Request) -> dict[str, Any]:
    # JSON only: a cross-site HTML form cannot send it without a CORS preflight we never answer.
    if request.content_type != "application/json":
        raise WebError(415, "bad-request", "Send JSON (Content-Type: application/json).")
    try:
        data = await request.json()
    except ValueError:
        raise WebError(400, "bad-request", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise WebError(400, "bad-request", "The request body must be a JSON object.")
    return data
