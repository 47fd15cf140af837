"""aiohttp handlers for Twilio's voice webhooks: signed form POSTs in, TwiML or a spooled job out."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from multidict import MultiDict

from vm2mail import logsetup, metrics
from vm2mail.config.model import Config, Mailbox
from vm2mail.errors import SignatureError, SpoolError, TelephonyError
from vm2mail.jobs.jobs import (
    MISSED_CALL,
    VOICEMAIL,
    CallInfo,
    Job,
    caller_number,
    sid_message_id,
    twilio_job_id,
)
from vm2mail.jobs.spool import Spool
from vm2mail.pipeline import callstatus
from vm2mail.routing import decide as routing
from vm2mail.routing.breaker import Breakers, dial_failed
from vm2mail.routing.switches import Switches
from vm2mail.telephony import callpath, prompts, twiml
from vm2mail.telephony.menustate import MenuState
from vm2mail.telephony.menustate import encode as encode_state
from vm2mail.telephony.signature import SIGNATURE_HEADER, require_signature, verify, webhook_url
from vm2mail.twilioapi.fetch import recording_url

log = logging.getLogger(__name__)

PREFIX = "/twilio/"
FORM = "application/x-www-form-urlencoded"

# Twilio SIDs: two-letter type prefix + 32 hex digits (https://www.twilio.com/docs/glossary/what-is-a-sid).
CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
RECORDING_SID = re.compile(r"^RE[0-9a-fA-F]{32}$")

# DialCallStatus values after which the callee talked to the caller
# (https://www.twilio.com/docs/voice/twiml/dial#dialcallstatus): the call is left alone.
CONNECTED = frozenset({"completed", "answered"})
NOT_CONNECTED = frozenset({"no-answer", "busy", "failed", "canceled"})


@dataclass
class TelephonyDeps:
    """What the telephony edge needs from the composition root."""

    config: Callable[[], Config]  # current config (reload swaps it)
    spool: Spool
    # Optional services the composition root wires in when they run:
    mailbox_full: Callable[[Mailbox], Awaitable[bool]] | None = None  # the watcher's counts (max_messages)
    greeting_url: Callable[[Mailbox], Awaitable[str | None]] | None = None  # recorded greeting (menu)
    away_greeting_url: Callable[[Mailbox], Awaitable[str | None]] | None = None  # recorded away greeting
    switches: Switches | None = None  # divert/outage switches in IMAP (routing/switches.py)
    breakers: Breakers | None = None  # the PBX circuit breakers (routing/breaker.py)


def _remaining(config: Config, deadline: float | None) -> float:
    """Seconds left of the call's budget (all of it when the step set no deadline)."""
    if deadline is None:
        return config.server.call_budget_seconds
    return max(0.0, deadline - asyncio.get_running_loop().time())


def _sid(params: Mapping[str, str], name: str, pattern: re.Pattern[str]) -> str:
    value = params.get(name, "")
    if not pattern.match(value):
        raise TelephonyError(f"{name} missing or malformed")
    return value


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name, "").strip()
    if not value:
        raise TelephonyError(f"{name} missing")
    return value


def _seconds(raw: str | None) -> int | None:
    """A Twilio duration in whole seconds; None when absent or unusable (e.g. -1 while recording)."""
    try:
        value = int(raw or "")
    except ValueError:
        return None
    return value if value >= 0 else None


def _started_at(raw: str | None, now: datetime) -> str:
    """RecordingStartTime is RFC 2822 ("Mon, 23 Nov 2026 10:00:00 +0000"); fall back to ``now``."""
    if raw:
        try:
            parsed = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            log.warning("unparseable RecordingStartTime %r: using the callback time", raw)
        else:
            if parsed.tzinfo is None:  # RFC 2822 "-0000": UTC with no claim about local time
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.isoformat()
    return now.isoformat()


async def _form(request: web.Request) -> MultiDict[str]:
    """The POSTed form, every parameter kept (repeated keys too): Twilio signs over all of them."""
    if request.content_type != FORM:
        raise TelephonyError(f"expected {FORM}, got {request.content_type or 'no body'}")
    form: MultiDict[str] = MultiDict()
    try:
        posted = await request.post()
    except (LookupError, UnicodeDecodeError) as exc:  # charset=<unknown>, or bytes not in that charset
        raise TelephonyError(f"cannot decode the form ({request.charset or 'utf-8'}): {exc}") from exc
    for key, value in posted.items():
        if not isinstance(value, str):
            raise TelephonyError("file fields are not accepted")
        form.add(key, value)
    return form


form_of = _form  # for the other /twilio/ handlers (the phone menu)


def _twiml(document: str) -> web.Response:
    # Twilio accepts TwiML served as text/xml or application/xml
    # (https://www.twilio.com/docs/voice/twiml#twilios-request-to-your-application).
    return web.Response(text=document, content_type="application/xml")


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain")


def recording_job(
    *, config: Config, mailbox: Mailbox, query: Mapping[str, str], form: Mapping[str, str], now: datetime
) -> Job | None:
    """Translate a recordingStatusCallback into the spool's job, or None when there is nothing to do.

    ``completed`` → a voicemail; ``absent`` (silence, nothing stored) → a missed call if the mailbox
    wants those; ``failed`` → a missed call always, since the caller did try
    (https://www.twilio.com/docs/voice/twiml/record#recordingstatuscallback).
    """
    call_sid = _sid(form, "CallSid", CALL_SID)
    recording_sid = _sid(form, "RecordingSid", RECORDING_SID)
    status = form.get("RecordingStatus", "")
    if status == "completed":
        kind = VOICEMAIL
    elif status == "absent":
        if not mailbox.missed_call_email:
            log.info(
                "call %s: empty recording %s, mailbox %s wants no missed-call mail",
                call_sid,
                recording_sid,
                mailbox.id,
            )
            return None
        kind = MISSED_CALL
    elif status == "failed":
        log.error(
            "call %s: recording %s failed (ErrorCode %s): reporting a missed call to mailbox %s",
            call_sid,
            recording_sid,
            form.get("ErrorCode", "?"),
            mailbox.id,
        )
        kind = MISSED_CALL
    else:
        log.warning("call %s: ignoring RecordingStatus %r for %s", call_sid, status, recording_sid)
        return None
    return Job(
        id=twilio_job_id(recording_sid),
        kind=kind,
        source="twilio",
        mailbox=mailbox.id,
        message_id=sid_message_id(recording_sid, config.server.mail_domain),
        call=CallInfo(
            call_sid=call_sid,
            called=_required(query, "to"),
            caller=caller_number(query.get("from")),
            caller_name=query.get("name", "").strip() or None,
        ),
        started_at=_started_at(form.get("RecordingStartTime"), now),
        recording_sid=recording_sid,
        # Only a completed recording has media to fetch; the worker fetches it with Basic auth, from
        # the URL built of api_base_url and the validated SID, not the callback's RecordingUrl.
        recording_url=recording_url(config.twilio, recording_sid) if kind == VOICEMAIL else None,
        recording_duration=_seconds(form.get("RecordingDuration")),
    )


class _Webhooks:
    """The handlers, bound to the dependencies; every request has passed ``guard`` already."""

    def __init__(self, deps: TelephonyDeps) -> None:
        self.deps = deps
        self.full = callpath.CachedLookup[bool]("mailbox-full check")

    async def _lookups(
        self,
        config: Config,
        mailbox: Mailbox,
        greeting_url: Callable[[Mailbox], Awaitable[str | None]] | None,
        deadline: float | None,
    ) -> tuple[bool, str | None]:
        """(mailbox full?, recorded greeting URL), side by side, by the call's deadline (callpath).

        ``greeting_url`` is the lookup of the greeting the caller would hear (the mailbox's own or its
        away greeting), None when no recorded greeting can play.
        """
        budget = _remaining(config, deadline)
        is_full = self.deps.mailbox_full

        async def full() -> bool:
            if is_full is None:
                return False
            return await self.full.get(mailbox.id, lambda: is_full(mailbox), False, budget)

        async def recorded() -> str | None:
            if greeting_url is None:
                return None
            # greeting_url is cache-first itself (menu.routes); this bound only guards the wiring.
            ok, url = await callpath.within(budget + 0.2, greeting_url(mailbox))
            return url if ok else None

        return await asyncio.gather(full(), recorded())

    async def _voicemail(
        self,
        config: Config,
        mailbox: Mailbox,
        form: Mapping[str, str],
        attempt: int = 1,
        route: routing.Route | None = None,
        deadline: float | None = None,
    ) -> str:
        # Never a blocking IMAP wait here: a hung mail store must not keep a caller from leaving a message.
        lookup = None  # which recorded greeting could play: looked up alongside the full check
        if attempt == 1 and (route is None or route.greeting == routing.GREETING):
            lookup = self.deps.greeting_url
        elif attempt == 1 and route is not None and route.greeting == routing.AWAY and not route.away_text:
            lookup = self.deps.away_greeting_url
        is_full, recorded = await self._lookups(config, mailbox, lookup, deadline)
        if is_full:
            log.info("call %s: mailbox %s is full, nothing recorded", form.get("CallSid", "?"), mailbox.id)
            return twiml.say_and_hangup(prompts.mailbox_prompt(config, mailbox, prompts.MAILBOX_FULL))
        caller = caller_number(form.get("From"))
        context = twiml.CallContext(
            mailbox_id=mailbox.id,
            called=form.get("To", ""),
            caller=caller,
            caller_name=form.get("CallerName", "").strip() or None,
        )
        greeting: twiml.Spoken = prompts.mailbox_prompt(
            config,
            mailbox,
            prompts.GREETING if attempt == 1 else prompts.TOO_SHORT,
            called=context.called,
            caller=caller,
        )
        menu_action = None
        if route is not None and route.greeting != routing.GREETING and attempt == 1:
            # Away, outage or closed: the situation's greeting (templates/prompts/<lang>/<kind>.j2).
            greeting = prompts.mailbox_prompt(config, mailbox, f"{route.greeting}.j2", text=route.away_text)
            # A recorded away greeting (looked up only for AWAY without an away text) replaces it.
            greeting = twiml.Play(recorded) if recorded else greeting
        elif attempt == 1:
            greeting = twiml.Play(recorded) if recorded else greeting
            if mailbox.pin_hash is not None:
                # `*` during the greeting opens the menu (issue 3); only mailboxes with a PIN have one.
                state = MenuState(call=form.get("CallSid", ""), step="greet", mailbox=mailbox.id)
                token = encode_state(config.server.secret_key, state)
                menu_action = twiml.absolute_url(config.server.public_url, twiml.MENU_PATH, s=token)
        return twiml.voicemail(
            public_url=config.server.public_url,
            mailbox=mailbox,
            context=context,
            greeting=greeting,
            goodbye=prompts.mailbox_prompt(config, mailbox, prompts.GOODBYE),
            attempt=attempt,
            menu_action=menu_action,
        )

    async def _route(self, config: Config, called: str, mailbox: Mailbox, deadline: float) -> routing.Route:
        """Ask the routing core; the switches are read cache-first and bounded (routing/switches.py)."""
        switch = outage = routing.Switch()
        if self.deps.switches is not None:
            wait = min(config.routing.read_timeout_seconds, _remaining(config, deadline))
            switch, outage = await asyncio.gather(
                self.deps.switches.cached_mode(mailbox, wait), self.deps.switches.cached_outage(wait)
            )
        breakers = self.deps.breakers
        phase = (
            breakers.phase(mailbox.forward_to) if breakers and mailbox.forward_to else routing.BREAKER_CLOSED
        )
        route = routing.decide(
            config=config,
            called=called,
            mailbox=mailbox,
            switch=switch,
            outage=outage,
            breaker=phase,
            now=datetime.now(UTC),
        )
        if route.forward and phase == routing.BREAKER_PROBE and breakers and mailbox.forward_to:
            breakers.probing(mailbox.forward_to)  # synchronous with phase(): one probe at a time
        metrics.ROUTES.labels(reason=route.reason).inc()
        return route

    def _query_mailbox(self, config: Config, request: web.Request) -> Mailbox | None:
        return config.mailboxes.get(request.query.get("mb", ""))

    async def voice(self, request: web.Request) -> web.Response:
        """The number's voice URL: forward first if the mailbox says so, else straight to voicemail."""
        config = self.deps.config()
        form = await _form(request)
        call_sid = _sid(form, "CallSid", CALL_SID)
        called = _required(form, "To")
        mailbox = config.mailbox_for_number(called)
        caller = caller_number(form.get("From"))
        owner = config.mailbox_for_owner(caller) if caller else None
        if called in config.menu.numbers or (
            mailbox is not None and owner is mailbox and mailbox.pin_hash is not None
        ):
            # The menu's access number, or an owner calling their own mailbox from forward_to.
            log.info("call %s: to the phone menu", call_sid)
            metrics.CALLS.labels(outcome="menu").inc()
            return _twiml(twiml.redirect(twiml.absolute_url(config.server.public_url, twiml.MENU_PATH)))
        if mailbox is None:
            log.warning("call %s: the called number %s belongs to no mailbox", call_sid, called)
            prompt = prompts.service_prompt(config, prompts.NOT_IN_SERVICE, called=called)
            metrics.CALLS.labels(outcome="unknown_number").inc()
            return _twiml(twiml.say_and_hangup(prompt))
        # One budget for the whole answer: the switch reads and the greeting lookups share it, so a
        # hung mail store costs the caller call_budget_seconds once, not once per lookup.
        deadline = asyncio.get_running_loop().time() + config.server.call_budget_seconds
        route = await self._route(config, called, mailbox, deadline)
        if route.forward and mailbox.forward_to:
            log.info("call %s: mailbox %s, ringing its forward number first", call_sid, mailbox.id)
            caller_id = caller_number(form.get("From")) or called
            metrics.CALLS.labels(outcome="forward").inc()
            return _twiml(
                twiml.forward(
                    public_url=config.server.public_url,
                    mailbox=mailbox,
                    forward_to=mailbox.forward_to,
                    caller_id=caller_id,
                )
            )
        log.info("call %s: mailbox %s, taking a message (%s)", call_sid, route.mailbox.id, route.reason)
        metrics.CALLS.labels(outcome="voicemail").inc()
        return _twiml(await self._voicemail(config, route.mailbox, form, route=route, deadline=deadline))

    async def dial_done(self, request: web.Request) -> web.Response:
        """The ``<Dial action>``: answered calls are left alone, the rest go to voicemail."""
        config = self.deps.config()
        form = await _form(request)
        call_sid = _sid(form, "CallSid", CALL_SID)
        status = form.get("DialCallStatus", "")
        mailbox = self._query_mailbox(config, request)
        if self.deps.breakers is not None and mailbox is not None and mailbox.forward_to:
            failed = dial_failed(status, form.get("DialSipResponseCode"))
            self.deps.breakers.result(mailbox.forward_to, failed, call_sid=call_sid)
        if status in CONNECTED:
            log.info("call %s: forwarded call answered (%s)", call_sid, status)
            return _twiml(twiml.hangup())
        if mailbox is None:
            log.error(
                "call %s: dial-done for unknown mailbox %r (config changed?)",
                call_sid,
                request.query.get("mb"),
            )
            prompt = prompts.service_prompt(config, prompts.NOT_IN_SERVICE, called=form.get("To", ""))
            return _twiml(twiml.say_and_hangup(prompt))
        if status not in NOT_CONNECTED:
            log.warning("call %s: unknown DialCallStatus %r, taking a message", call_sid, status)
        log.info("call %s: forward %s, mailbox %s taking a message", call_sid, status, mailbox.id)
        return _twiml(await self._voicemail(config, mailbox, form))

    async def record_done(self, request: web.Request) -> web.Response:
        """The ``<Record action>``: thank a caller still on the line; offer one retry if too short."""
        config = self.deps.config()
        form = await _form(request)
        call_sid = _sid(form, "CallSid", CALL_SID)
        if form.get("Digits") == "hangup":
            return _twiml(twiml.empty())  # the caller is gone; the status callback brings the audio
        mailbox = self._query_mailbox(config, request)
        if mailbox is None:
            log.error("call %s: record-done for unknown mailbox %r", call_sid, request.query.get("mb"))
            return _twiml(twiml.hangup())
        attempt = _seconds(request.query.get("attempt")) or 1
        duration = _seconds(form.get("RecordingDuration"))
        if duration is not None and duration < mailbox.min_message_seconds and attempt < 2:
            log.info("call %s: %ss message too short, asking once more", call_sid, duration)
            return _twiml(await self._voicemail(config, mailbox, form, attempt=attempt + 1))
        return _twiml(twiml.say_and_hangup(prompts.mailbox_prompt(config, mailbox, prompts.THANKS)))

    async def recording(self, request: web.Request) -> web.Response:
        """The recordingStatusCallback: make the job durable, then acknowledge with 204."""
        config = self.deps.config()
        form = await _form(request)
        call_sid = _sid(form, "CallSid", CALL_SID)
        mailbox_id = request.query.get("mb", "")
        mailbox = config.mailboxes.get(mailbox_id)
        if mailbox is None:
            log.error(
                "call %s: recording callback for unknown mailbox %r (config changed?)", call_sid, mailbox_id
            )
            raise TelephonyError(f"unknown mailbox {mailbox_id!r}")
        job = recording_job(
            config=config, mailbox=mailbox, query=request.query, form=form, now=datetime.now(UTC)
        )
        if job is None:
            return web.Response(status=204)
        job.queued_at = time.time()  # the acknowledgement: vm2mail_pipeline_seconds counts from here
        if await self.deps.spool.submit(job):
            metrics.RECORDINGS.labels(source="twilio", kind=job.kind).inc()
            log.info("call %s: %s job %s spooled for mailbox %s", call_sid, job.kind, job.id, mailbox.id)
        else:
            log.info("call %s: job %s already spooled (repeated callback)", call_sid, job.id)
        return web.Response(status=204)

    async def call_status(self, request: web.Request) -> web.Response:
        """The number's call-status callback: a call that ended may be a missed call (callstatus.py)."""
        config = self.deps.config()
        form = await _form(request)
        _sid(form, "CallSid", CALL_SID)
        job = callstatus.call_status_job(
            config=config, form=form, caller=caller_number(form.get("From")), now=datetime.now(UTC)
        )
        if job is not None and await self.deps.spool.submit(job):
            log.info("call %s: ended without a recording so far; checking again later", job.call.call_sid)
        return web.Response(status=204)


def guard(deps: TelephonyDeps) -> Middleware:
    """The one place that authenticates Twilio POSTs under /twilio/ and maps errors to HTTP replies.

    SignatureError → 403, TelephonyError or ValueError (bad input) → 400, SpoolError → 503 (never
    acknowledge what is not durable), anything else → 500, logged. Other paths pass through untouched.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (
            request.method != "POST"
            or not request.path.startswith(PREFIX)
            or request.match_info.http_exception is not None  # 404/405: let the router answer
        ):
            return await handler(request)
        call_sid = ""
        context = logsetup.CALL_ID.set(None)
        try:
            config = deps.config()
            # raw_path is the request target byte for byte: Twilio signed the URL exactly as we wrote it.
            url = webhook_url(config.server.public_url, request.raw_path)
            signature = request.headers.get(SIGNATURE_HEADER)
            # Unsigned requests are refused before the body is read or parsed: anyone can send them.
            require_signature(config.twilio.auth_token, url, signature)
            form = await _form(request)
            call_sid = form.get("CallSid", "")[:34]
            # Every log record of this request carries the call id (vm2mail.logsetup).
            logsetup.CALL_ID.set(call_sid if CALL_SID.match(call_sid) else None)
            verify(config.twilio.auth_token, url, form, signature, call_sid=call_sid)
            if form.get("AccountSid") != config.twilio.account_sid:
                log.warning("call %s: webhook %s for another account refused", call_sid, request.path)
                raise SignatureError("AccountSid does not match")
            return await handler(request)
        except web.HTTPException:
            raise
        except SignatureError:
            return _text(403, "Forbidden: invalid Twilio signature\n")
        except SpoolError as exc:
            log.error(
                "call %s: %s: spool not writable, not acknowledging: %s", call_sid or "?", request.path, exc
            )
            return _text(503, "Service unavailable: cannot store the request\n")
        except (TelephonyError, ValueError) as exc:
            log.warning("call %s: %s: bad request: %s", call_sid or "?", request.path, exc)
            return _text(400, f"Bad request: {exc}\n")
        except Exception:
            log.exception("call %s: %s failed", call_sid or "?", request.path)
            return _text(500, "Internal error\n")
        finally:
            logsetup.CALL_ID.reset(context)

    return middleware


def add_routes(app: web.Application, deps: TelephonyDeps) -> None:
    """Register the Twilio webhooks and their guard on ``app`` (before it starts)."""
    hooks = _Webhooks(deps)
    app.middlewares.append(guard(deps))
    app.router.add_post(twiml.VOICE_PATH, hooks.voice)
    app.router.add_post(twiml.DIAL_DONE_PATH, hooks.dial_done)
    app.router.add_post(twiml.RECORD_DONE_PATH, hooks.record_done)
    app.router.add_post(twiml.RECORDING_PATH, hooks.recording)
    app.router.add_post(callstatus.CALL_STATUS_PATH, hooks.call_status)
