"""A local stand-in for Twilio's REST API (recordings, media, SMS) on loopback, for tests and demos.

It speaks the 2010-04-01 API shape closely enough for the official ``twilio`` client (with
``client.api.base_url`` pointed here) and for the gateway's media downloads:

* ``GET  /2010-04-01/Accounts/{AC}/Recordings/{RE}`` and ``…/{RE}.wav``: the WAV bytes as stored.
  ``…/{RE}.mp3`` answers 404: the fake does not transcode (ask for WAV, as the gateway does).
* ``GET  …/Recordings/{RE}.json``, ``GET …/Recordings.json`` (DateCreated, DateCreated<, DateCreated>,
  CallSid, Page, PageSize), ``DELETE …/Recordings/{RE}.json`` → 204.
* ``POST …/Messages.json`` (To, From, Body) → 201 message resource; To not E.164 → 400 code 21211.
* ``POST …/Calls.json`` (To, From, Twiml or Url) → 201 call resource, kept in ``placed``.
* ``GET  …/Calls/{CA}.json``: the Call resource (``to``, ``from``, ``caller_name``) of calls added with
  ``add_call`` (reconciliation maps a recording to its mailbox by the called number).

HTTP Basic auth (AccountSid:AuthToken) is mandatory everywhere, as on new Twilio accounts; errors
carry Twilio's JSON error body (``code``, ``message``, ``more_info``, ``status``).
"""

from __future__ import annotations

import base64
import io
import secrets
import wave
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from vm2mail import phone

API = "/2010-04-01"


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two letters and 32 lower-case hex digits."""
    return prefix + secrets.token_hex(16)


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(login, password) of an RFC 7617 ``Authorization: Basic`` header, or None.

    Decoded by hand: aiohttp 3.14 deprecates ``BasicAuth`` (a DeprecationWarning, an error in tests).
    """
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    login, colon, password = decoded.partition(":")
    return (login, password) if colon else None


def basic_auth_header(login: str, password: str) -> str:
    """The ``Authorization`` value for HTTP Basic auth (RFC 7617), without aiohttp's deprecated BasicAuth."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode("ascii")


def rfc2822(moment: datetime) -> str:
    """Twilio's REST date format: "Mon, 23 Nov 2026 10:00:00 +0000"."""
    return format_datetime(moment.astimezone(UTC))


def wav_seconds(data: bytes) -> int:
    """Whole seconds of a WAV (rounded, at least 1 when there is audio); 0 when unreadable."""
    try:
        with wave.open(io.BytesIO(data)) as reader:
            frames, rate = reader.getnframes(), reader.getframerate()
    except (wave.Error, EOFError):
        return 0
    return max(1, round(frames / rate)) if frames and rate else 0


@dataclass
class Recording:
    """One stored recording, as Twilio keeps it for a ``<Record>`` verb."""

    sid: str
    account_sid: str
    call_sid: str
    wav: bytes
    duration: int
    status: str = "completed"
    start_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    date_created: datetime = field(default_factory=lambda: datetime.now(UTC))
    channels: int = 1
    source: str = "RecordVerb"

    @property
    def uri(self) -> str:
        return f"{API}/Accounts/{self.account_sid}/Recordings/{self.sid}"

    def resource(self, base_url: str) -> dict[str, Any]:
        """The JSON Twilio returns for this recording (Recording resource, API 2010-04-01)."""
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "call_sid": self.call_sid,
            "conference_sid": None,
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_created),
            "start_time": rfc2822(self.start_time),
            "duration": str(self.duration),  # Twilio sends the duration as a string
            "sid": self.sid,
            "price": None,
            "price_unit": "USD",
            "status": self.status,
            "channels": self.channels,
            "source": self.source,
            "error_code": None,
            "uri": f"{self.uri}.json",
            "encryption_details": None,
            "subresource_uris": {
                "add_on_results": f"{self.uri}/AddOnResults.json",
                "transcriptions": f"{self.uri}/Transcriptions.json",
            },
            "media_url": f"{base_url}{self.uri}",
        }


@dataclass(frozen=True)
class MediaFetch:
    """One media GET the fake answered: which recording, which extension ("" = none), which status."""

    sid: str
    extension: str
    status: int


def _error(status: int, code: int, message: str) -> web.Response:
    # Twilio's REST error body (https://www.twilio.com/docs/usage/twilios-response#response-formats-exceptions).
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if status == 401 else None
    return web.json_response(body, status=status, headers=headers)


def _date_filter(raw: str) -> tuple[bool, datetime]:
    """A DateCreated value: YYYY-MM-DD (whole day, GMT) or the client's YYYY-MM-DDTHH:MM:SSZ."""
    if len(raw) == 10:
        return True, datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=UTC)
    return False, datetime.strptime(raw, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _date_matches(op: str, created: datetime, day: bool, at: datetime) -> bool:
    """DateCreated (on that day), DateCreated< (on or before), DateCreated> (on or after), per Twilio.

    ``op`` is the key's last character; ``day`` compares calendar days (GMT) instead of instants.
    """
    if day:
        created = created.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if op == "<":
        return created <= at
    if op == ">":
        return created >= at
    return created == at


class FakeTwilio:
    """The stand-in server; inspect ``recordings``, ``fetches``, ``deleted`` and ``messages`` in tests."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.recordings: dict[str, Recording] = {}
        self.fetches: list[MediaFetch] = []
        self.deleted: set[str] = set()
        self.messages: list[dict[str, str]] = []
        self.placed: list[dict[str, str]] = []  # outbound calls created through POST Calls.json
        self.calls: dict[str, dict[str, Any]] = {}
        self.refused_messages: list[dict[str, str]] = []  # SMS answered with an error by refuse_number
        self._refused_numbers: dict[str, tuple[int, int]] = {}  # To -> (HTTP status, Twilio error code)
        self._fail_remaining = 0
        self._fail_status = 500
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- control ---------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        base = f"{API}/Accounts/{{account}}"
        app.router.add_get(f"{base}/Recordings.json", self._list)
        app.router.add_get(f"{base}/Recordings/{{name}}", self._get)
        app.router.add_delete(f"{base}/Recordings/{{name}}", self._delete)
        app.router.add_post(f"{base}/Messages.json", self._message)
        app.router.add_get(f"{base}/Calls.json", self._calls)
        app.router.add_post(f"{base}/Calls.json", self._create_call)
        app.router.add_get(f"{base}/Calls/{{name}}", self._call)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.base_url = f"http://{bound_host}:{bound_port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def add_recording(
        self,
        wav: bytes,
        *,
        call_sid: str,
        duration: int | None = None,
        status: str = "completed",
        start_time: datetime | None = None,
        sid: str | None = None,
    ) -> Recording:
        """Store ``wav`` as a new recording of ``call_sid``; the duration defaults to the WAV's length."""
        now = datetime.now(UTC)
        recording = Recording(
            sid=sid or new_sid("RE"),
            account_sid=self.account_sid,
            call_sid=call_sid,
            wav=wav,
            duration=wav_seconds(wav) if duration is None else duration,
            status=status,
            start_time=start_time or now,
            date_created=now,
        )
        self.recordings[recording.sid] = recording
        return recording

    def add_call(
        self,
        call_sid: str,
        *,
        to: str,
        caller: str,
        caller_name: str | None = None,
        parent: str | None = None,
        status: str = "completed",
    ) -> None:
        """Remember a call so ``GET …/Calls/{call_sid}.json`` answers (Call resource, API 2010-04-01)."""
        now = rfc2822(datetime.now(UTC))
        self.calls[call_sid] = {
            "sid": call_sid,
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "to": to,
            "to_formatted": to,
            "from": caller,
            "from_formatted": caller,
            "caller_name": caller_name,
            "direction": "outbound-dial" if parent else "inbound",
            "parent_call_sid": parent,
            "status": status,
            "date_created": now,
            "date_updated": now,
            "start_time": now,
            "end_time": now,
            "uri": f"{API}/Accounts/{self.account_sid}/Calls/{call_sid}.json",
        }

    def recording_url(self, recording: Recording) -> str:
        """The RecordingUrl Twilio would report: absolute, without an extension."""
        return f"{self.base_url}{recording.uri}"

    def fail_next(self, n: int, status: int = 500) -> None:
        """Answer the next ``n`` media GETs with ``status`` (after authentication succeeded)."""
        self._fail_remaining = n
        self._fail_status = status

    def refuse_number(self, number: str, code: int = 21211, status: int = 400) -> None:
        """Answer every SMS to ``number`` with Twilio error ``code`` (21211 invalid, 21610 unsubscribed)."""
        self._refused_numbers[number] = (status, code)

    # -- handlers --------------------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        credentials = basic_credentials(request.headers.get("Authorization", ""))
        if credentials is None:
            return False
        login, password = credentials
        return (
            login == self.account_sid
            and secrets.compare_digest(password.encode(), self.auth_token.encode())
            and request.match_info["account"] == self.account_sid
        )

    def _deny(self) -> web.Response:
        return _error(401, 20003, "Authenticate")

    def _not_found(self, request: web.Request) -> web.Response:
        return _error(404, 20404, f"The requested resource {request.path} was not found")

    async def _get(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._deny()
        sid, _, extension = request.match_info["name"].partition(".")
        recording = self.recordings.get(sid)
        if extension == "json":
            if recording is None:
                return self._not_found(request)
            return web.json_response(recording.resource(self.base_url))
        status = 200
        if self._fail_remaining > 0:
            self._fail_remaining -= 1
            status = self._fail_status
        elif recording is None or extension not in ("", "wav"):
            status = 404  # unknown, deleted, or .mp3 (not transcoded by the fake)
        self.fetches.append(MediaFetch(sid=sid, extension=extension, status=status))
        if status == 404:
            return self._not_found(request)
        if status != 200 or recording is None:
            return _error(status, 20500, "Internal Server Error")
        return web.Response(body=recording.wav, content_type="audio/x-wav")

    async def _delete(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._deny()
        sid, _, extension = request.match_info["name"].partition(".")
        if extension not in ("", "json") or self.recordings.pop(sid, None) is None:
            return self._not_found(request)
        self.deleted.add(sid)
        return web.Response(status=204)

    async def _list(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._deny()
        query = request.query
        selected = sorted(self.recordings.values(), key=lambda r: r.date_created, reverse=True)
        try:
            for key in ("DateCreated", "DateCreated<", "DateCreated>"):
                if key in query:
                    day, at = _date_filter(query[key])
                    selected = [r for r in selected if _date_matches(key[-1], r.date_created, day, at)]
            page = int(query.get("Page", "0"))
            page_size = min(int(query.get("PageSize", "50")), 1000)
        except ValueError:
            return _error(400, 20001, "Invalid filter or paging parameter")
        if "CallSid" in query:
            selected = [r for r in selected if r.call_sid == query["CallSid"]]
        start = page * page_size
        chunk = selected[start : start + page_size]
        filters = {k: v for k, v in query.items() if k not in ("Page", "PageSize", "PageToken")}
        uri = f"{API}/Accounts/{self.account_sid}/Recordings.json"

        def page_uri(number: int) -> str:
            return f"{uri}?{urlencode({**filters, 'PageSize': page_size, 'Page': number})}"

        more = start + page_size < len(selected)
        return web.json_response(
            {
                "recordings": [r.resource(self.base_url) for r in chunk],
                "end": start + len(chunk) - 1 if chunk else start,
                "first_page_uri": page_uri(0),
                "next_page_uri": page_uri(page + 1) if more else None,
                "previous_page_uri": page_uri(page - 1) if page > 0 else None,
                "page": page,
                "page_size": page_size,
                "start": start,
                "uri": page_uri(page),
            }
        )

    async def _calls(self, request: web.Request) -> web.Response:
        """Call list (one page), filtered by ParentCallSid as Twilio does for ``<Dial>`` legs."""
        if not self._authorized(request):
            return self._deny()
        parent = request.query.get("ParentCallSid")
        calls = [c for c in self.calls.values() if parent is None or c["parent_call_sid"] == parent]
        uri = f"{API}/Accounts/{self.account_sid}/Calls.json"
        return web.json_response(
            {
                "calls": calls,
                "page": 0,
                "page_size": 50,
                "start": 0,
                "end": max(len(calls) - 1, 0),
                "uri": uri,
                "first_page_uri": uri,
                "next_page_uri": None,
                "previous_page_uri": None,
            }
        )

    async def _call(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._deny()
        sid, _, extension = request.match_info["name"].partition(".")
        call = self.calls.get(sid)
        if call is None or extension != "json":
            return self._not_found(request)
        return web.json_response(call)

    async def _create_call(self, request: web.Request) -> web.Response:
        """``POST …/Calls.json`` (To, From, Twiml or Url): an outbound call, remembered in ``placed``."""
        if not self._authorized(request):
            return self._deny()
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        to, sender = form.get("To", ""), form.get("From", "")
        if not phone.is_e164(to):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not phone.is_e164(sender):
            return _error(400, 21212, f"The 'From' number {sender} is not a valid phone number.")
        if not (form.get("Twiml") or form.get("Url")):
            return _error(400, 21205, "Url or Twiml is required.")
        self.placed.append(form)
        sid = new_sid("CA")
        return web.json_response(
            {
                "sid": sid,
                "account_sid": self.account_sid,
                "to": to,
                "from": sender,
                "status": "queued",
                "direction": "outbound-api",
                "uri": f"{API}/Accounts/{self.account_sid}/Calls/{sid}.json",
            },
            status=201,
        )

    async def _message(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._deny()
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        to, sender, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        if not phone.is_e164(to):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not body:
            return _error(400, 21602, "Message body is required.")
        if to in self._refused_numbers:
            self.refused_messages.append(form)
            status, code = self._refused_numbers[to]
            return _error(status, code, f"The message to {to} cannot be sent (error {code}).")
        now = rfc2822(datetime.now(UTC))
        sid = new_sid("SM")
        self.messages.append(form)
        return web.json_response(
            {
                "sid": sid,
                "account_sid": self.account_sid,
                "api_version": "2010-04-01",
                "body": body,
                "date_created": now,
                "date_updated": now,
                "date_sent": None,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": sender,
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "num_media": "0",
                "num_segments": "1",
                "price": None,
                "price_unit": "USD",
                "status": "queued",
                "to": to,
                "uri": f"{API}/Accounts/{self.account_sid}/Messages/{sid}.json",
                "subresource_uris": {"media": f"{API}/Accounts/{self.account_sid}/Messages/{sid}/Media.json"},
            },
            status=201,
        )
