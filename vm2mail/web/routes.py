"""The web inbox's routes under /inbox/: login, list, message, audio, actions and live events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiohttp import web

from vm2mail.errors import MailStoreError
from vm2mail.web import session as sessions
from vm2mail.web.assets import PREFIX
from vm2mail.web.auth import Outcome
from vm2mail.web.calls import add_call_routes, sms_limit
from vm2mail.web.deps import Caller, WebDeps, authenticate, client_address, json_body, uid_of, view_of
from vm2mail.web.folder import ACTIONS, Entry, entry_json
from vm2mail.web.greeting import add_greeting_routes
from vm2mail.web.http import WebError, api, error_response, ranged, security_headers
from vm2mail.web.live import HEARTBEAT_SECONDS

log = logging.getLogger(__name__)

MAX_LOGIN_FIELD = 512


def _set_cookie(response: web.StreamResponse, value: str, max_age: int) -> None:
    response.set_cookie(
        sessions.COOKIE,
        value,
        max_age=max_age,
        path="/inbox/",
        secure=True,
        httponly=True,
        samesite="Strict",
    )


def session_json(deps: WebDeps, caller: Caller) -> dict[str, Any]:
    box = caller.mailbox
    return {
        "mailbox": box.id,
        "name": box.name,
        "language": box.language,
        "timezone": box.timezone,
        "encrypted": box.encrypted,
        "server_playback": box.phone_playback or not box.encrypted,
        "csrf": sessions.csrf_token(deps.config().server.secret_key, caller.session),
        "expires": caller.session.expires,
        "page_size": deps.config().web.page_size,
        "can_call": bool(deps.connect is not None and box.forward_to and box.numbers),
        "can_sms": bool(deps.replies is not None and deps.config().twilio.sms_from),
        "sms_max": sms_limit(deps),
    }


def add_web_routes(app: web.Application, deps: WebDeps) -> None:
    """Everything under /inbox/ (the page, its files, the JSON API and the event stream)."""
    app.on_response_prepare.append(security_headers(deps.assets.csp))

    async def stop_streams(_app: web.Application) -> None:
        deps.closing.set()  # open event streams end, so shutdown does not wait for them

    app.on_shutdown.append(stop_streams)

    async def page(request: web.Request) -> web.StreamResponse:
        if not deps.config().web.enabled:
            raise web.HTTPNotFound()
        if deps.assets.missing:
            return web.Response(status=503, text="The web inbox's libraries are not installed (make deps).")
        return web.Response(body=deps.assets.page, content_type="text/html", charset="utf-8")

    async def static(request: web.Request) -> web.StreamResponse:
        found = deps.assets.files.get(request.match_info["path"])
        if found is None:
            raise web.HTTPNotFound()
        return web.Response(body=found[0], content_type=found[1], headers={"Cache-Control": "no-cache"})

    @api
    async def login(request: web.Request) -> web.StreamResponse:
        config = deps.config()
        if not config.web.enabled:
            raise WebError(404, "disabled", "The web inbox is not enabled.")
        data = await json_body(request)
        user, password = data.get("login"), data.get("password")
        if not isinstance(user, str) or not isinstance(password, str):
            raise WebError(400, "bad-request", "login and password are required.")
        if len(user) > MAX_LOGIN_FIELD or len(password) > MAX_LOGIN_FIELD:
            raise WebError(400, "bad-request", "login or password too long.")
        outcome, mailbox = await deps.logins.check(user, password, client=client_address(request))
        if outcome is Outcome.LOCKED:
            raise WebError(423, "locked", "Too many failed logins: this mailbox is locked for a while.")
        if outcome is Outcome.UNAVAILABLE:
            raise WebError(503, "unavailable", "The mail server is not reachable; try again soon.")
        if outcome is not Outcome.OK or mailbox is None:
            raise WebError(401, "wrong", "Wrong login or password.")
        lifetime = config.web.session_minutes * 60
        generation = await deps.generations.current(mailbox)
        value, issued = sessions.issue(config.server.secret_key, mailbox.id, generation, lifetime)
        response = web.json_response(session_json(deps, Caller(mailbox, issued)))
        _set_cookie(response, value, lifetime)
        return response

    @api
    async def whoami(request: web.Request) -> web.StreamResponse:
        return web.json_response(session_json(deps, await authenticate(deps, request)))

    @api
    async def logout(request: web.Request) -> web.StreamResponse:
        caller = await authenticate(deps, request, change=True)
        if request.match_info.get("everywhere"):
            await deps.generations.bump(caller.mailbox)
            log.info("web: mailbox %s logged out everywhere", caller.mailbox.id)
        response = web.json_response({"ok": True})
        _set_cookie(response, "", 0)
        return response

    @api
    async def listing(request: web.Request) -> web.StreamResponse:
        caller = await authenticate(deps, request)
        view = view_of(request, "all")
        try:
            number = max(1, int(request.query.get("page", "1")))
        except ValueError:
            raise WebError(400, "bad-page", "page must be a number.") from None
        size = deps.config().web.page_size
        found = await deps.folders.page(caller.mailbox, view, number, size)
        counts = found.counts
        return web.json_response(
            {
                "view": view,
                "page": found.page,
                "pages": found.pages,
                "total": found.total,
                "counts": {"new": counts.new, "heard": counts.heard, "saved": counts.saved},
                "items": [entry_json(caller.mailbox, e) for e in found.entries],
            }
        )

    async def voicemail(caller: Caller, request: web.Request) -> tuple[Entry, str]:
        uid, view = uid_of(request), view_of(request)
        entry = await deps.folders.entry(caller.mailbox, uid, view)
        if entry is None:
            # Another mailbox's UID, a message that is gone, or one that is not a voicemail: all
            # look the same from here, and none of them is touched.
            raise WebError(404, "not-found", "No such voicemail in this mailbox.")
        return entry, view

    @api
    async def message(request: web.Request) -> web.StreamResponse:
        caller = await authenticate(deps, request)
        entry, view = await voicemail(caller, request)
        raw = await deps.folders.raw(caller.mailbox, entry.uid, view)
        if raw is None:
            raise WebError(404, "not-found", "No such voicemail in this mailbox.")
        # The raw message as stored: for an encrypted voicemail this is PGP/MIME ciphertext that only
        # the user's key (in the browser) opens.
        return web.Response(
            body=raw,
            content_type="application/octet-stream",
            headers={"Content-Disposition": "attachment"},
        )

    @api
    async def audio(request: web.Request) -> web.StreamResponse:
        caller = await authenticate(deps, request)
        entry, view = await voicemail(caller, request)
        if entry.encrypted and not caller.mailbox.phone_playback:
            raise WebError(409, "encrypted", "This voicemail is encrypted: it is decrypted in the browser.")
        folder = await deps.folders.folder(caller.mailbox, view)
        mp3 = await deps.playback.audio(caller.mailbox, folder, entry.uid)
        if mp3 is None:
            raise WebError(404, "no-audio", "This voicemail has no playable audio.")
        return ranged(request, mp3, "audio/mpeg")

    @api
    async def act(request: web.Request) -> web.StreamResponse:
        caller = await authenticate(deps, request, change=True)
        action = request.match_info["action"]
        if action not in ACTIONS:
            raise WebError(404, "bad-action", f"Unknown action {action!r}.")
        entry, view = await voicemail(caller, request)
        uid = entry.uid
        if (action == "delete") == (view == "trash") and action in ("delete", "restore"):
            raise WebError(409, "bad-action", "Delete from the inbox, restore from the Trash.")
        now = await deps.folders.act(caller.mailbox, uid, view, action)
        if now is None:
            raise WebError(404, "not-found", "No such voicemail in this mailbox.")
        log.info("web: mailbox %s: %s UID %d (%s)", caller.mailbox.id, action, uid, view)
        return web.json_response({"ok": True, "uid": now})

    async def events(request: web.Request) -> web.StreamResponse:
        try:
            caller = await authenticate(deps, request)
        except WebError as exc:
            return error_response(exc.status, exc.code, exc.message)
        except MailStoreError:  # the page's EventSource retries; its list requests say what is wrong
            return error_response(503, "unavailable", "The mail server is not reachable; try again soon.")
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        await response.write(b"retry: 1000\n: connected\n\n")
        # The stream ends with the session: the page's EventSource reconnects and then asks to log in.
        ends = asyncio.get_running_loop().time() + max(0.0, caller.session.expires - time.time())
        async with deps.hub.listen(caller.mailbox.id) as queue:
            closing = asyncio.ensure_future(deps.closing.wait())
            try:
                while not deps.closing.is_set() and asyncio.get_running_loop().time() < ends:
                    getter = asyncio.ensure_future(queue.get())
                    done, _ = await asyncio.wait(
                        {getter, closing}, timeout=HEARTBEAT_SECONDS, return_when=asyncio.FIRST_COMPLETED
                    )
                    if getter in done:
                        await response.write(f"event: change\ndata: {getter.result()}\n\n".encode())
                    else:
                        getter.cancel()
                        await response.write(b": still here\n\n")
            except (ConnectionResetError, asyncio.CancelledError):
                pass
            finally:
                closing.cancel()
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def bare(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/inbox/")

    app.router.add_get("/inbox", bare)
    app.router.add_get("/inbox/", page)
    app.router.add_get(PREFIX + "{path:.+}", static)
    app.router.add_post("/inbox/api/login", login)
    app.router.add_get("/inbox/api/session", whoami)
    app.router.add_post("/inbox/api/logout", logout)
    app.router.add_post("/inbox/api/logout/{everywhere:everywhere}", logout)
    app.router.add_get("/inbox/api/voicemails", listing)
    app.router.add_get("/inbox/api/voicemails/{uid}/message", message)
    app.router.add_get("/inbox/api/voicemails/{uid}/audio", audio)
    actions = "|".join(ACTIONS)  # only these: .../callback and .../sms are other routes
    app.router.add_post("/inbox/api/voicemails/{uid}/{action:" + actions + "}", act)
    app.router.add_get("/inbox/api/events", events)
    add_greeting_routes(app, deps)
    add_call_routes(app, deps)
