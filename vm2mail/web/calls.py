"""Calling a caller back from the inbox: "call me and connect me" through Twilio, and replies by SMS.

The callback rings the owner's phone (``forward_to``) from the mailbox number and, when answered,
dials the caller with the mailbox number as caller ID, as the menu's callback does: the caller sees the
company number, never the owner's. SMS replies go through the same at-most-once sender as e-mail
replies (vm2mail.replies), keyed by a request id the page makes, so a retried POST sends nothing
twice.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from aiohttp import web
from twilio.twiml.voice_response import VoiceResponse

from vm2mail.errors import TelephonyError
from vm2mail.replies import ReplyTarget
from vm2mail.templating import language_template, render
from vm2mail.web.deps import WebDeps, authenticate, json_body, uid_of, view_of
from vm2mail.web.http import WebError, api

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{8,64}$")
# What the owner hears when they answer, before the caller's phone rings (admins override it in
# templates_dir).
CONNECTING = "web-connecting.j2"
DEFAULT_SMS_CHARS = 320


def sms_limit(deps: WebDeps) -> int:
    ingress = deps.config().smtp_ingress
    return ingress.reply_max_chars if ingress is not None else DEFAULT_SMS_CHARS


def connecting_prompt(language: str, number: str, templates_dir: Path | None = None) -> str:
    """The spoken "connecting you to <number, digit by digit>" in ``language``."""
    template = language_template("prompts", language, CONNECTING, templates_dir)
    return " ".join(render(template, templates_dir, number=number).split())


def connect_twiml(language: str, number: str, caller_id: str, templates_dir: Path | None = None) -> str:
    response: Any = VoiceResponse()
    response.say(connecting_prompt(language, number, templates_dir), language=language)
    # https://www.twilio.com/docs/voice/twiml/dial#callerid: a number of this account.
    response.dial(caller_id=caller_id).number(number)
    return str(response)


def add_call_routes(app: web.Application, deps: WebDeps) -> None:
    """``POST /inbox/api/voicemails/<uid>/callback`` and ``…/sms`` (JSON ``{"text", "request"}``)."""

    async def caller_of(request: web.Request) -> tuple[Any, str]:
        caller = await authenticate(deps, request, change=True)
        uid, view = uid_of(request), view_of(request)
        entry = await deps.folders.entry(caller.mailbox, uid, view)
        if entry is None:
            raise WebError(404, "not-found", "No such voicemail in this mailbox.")
        if not entry.caller:
            raise WebError(409, "no-caller", "The caller's number was withheld.")
        return caller, entry.caller

    @api
    async def callback(request: web.Request) -> web.StreamResponse:
        caller, number = await caller_of(request)
        box = caller.mailbox
        if deps.connect is None or not box.forward_to or not box.numbers:
            raise WebError(409, "no-callback", "This mailbox has no phone to ring (forward_to) or no number.")
        twiml = connect_twiml(box.language, number, box.numbers[0], deps.config().templates_dir)
        try:
            sid = await deps.connect(box.forward_to, box.numbers[0], twiml)
        except TelephonyError as exc:
            log.warning("web: mailbox %s: callback not placed: %s", box.id, exc)
            raise WebError(502, "twilio", "Twilio did not place the call; try again later.") from exc
        log.info("web: mailbox %s: callback %s rings the owner, then the caller", box.id, sid)
        return web.json_response({"ok": True, "call": sid})

    @api
    async def sms(request: web.Request) -> web.StreamResponse:
        caller, number = await caller_of(request)
        data = await json_body(request)
        text, request_id = data.get("text"), data.get("request")
        if not isinstance(text, str) or not text.strip():
            raise WebError(400, "empty-sms", "Write a message first.")
        if not isinstance(request_id, str) or not _REQUEST_ID.match(request_id):
            raise WebError(400, "bad-request", "request must be a request id (8 to 64 letters, digits, -).")
        limit = sms_limit(deps)
        if len(text) > limit:
            raise WebError(400, "sms-too-long", f"At most {limit} characters.")
        if deps.replies is None or not deps.config().twilio.sms_from:
            raise WebError(409, "no-sms", "SMS replies are not configured on this gateway.")
        box = caller.mailbox
        try:
            sid = await deps.replies.send_once(ReplyTarget(box, number, 0), text.strip(), f"web:{request_id}")
        except TelephonyError as exc:
            if exc.temporary:
                raise WebError(503, "twilio", "The SMS service is unavailable; try again later.") from exc
            raise WebError(409, "sms-refused", "The caller's number cannot receive SMS.") from exc
        return web.json_response({"ok": True, "sms": sid, "already": sid is None})

    app.router.add_post("/inbox/api/voicemails/{uid}/callback", callback)
    app.router.add_post("/inbox/api/voicemails/{uid}/sms", sms)
