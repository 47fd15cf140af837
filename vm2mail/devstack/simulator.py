"""Plays one inbound call against a running gateway the way Twilio does: signed webhooks, TwiML followed.

``play_fallback`` plays a call answered by a number's static fallback TwiML while the gateway is down.

Requests go to ``gateway_url`` but are signed over ``public_url`` (the gateway validates against its
configured public URL, as it must behind a TLS-terminating proxy). Recordings are registered at a
:class:`~vm2mail.devstack.fake_twilio.FakeTwilio`, so the gateway's worker can fetch and delete them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin

import aiohttp
from yarl import URL

from vm2mail.devstack.fake_twilio import FakeTwilio, Recording, new_sid, rfc2822
from vm2mail.errors import TelephonyError
from vm2mail.telephony.signature import SIGNATURE_HEADER, sign

# A runaway flow (TwiML redirecting to itself) must end; a real call makes a handful of requests.
MAX_REQUESTS = 25


class SimulationError(TelephonyError):
    """The gateway answered a webhook with a non-2xx status or TwiML the simulator cannot follow."""


@dataclass
class CallTrace:
    """What happened during one simulated call, in order."""

    call_sid: str
    steps: list[tuple[str, str]] = field(default_factory=list)  # (public URL, response body)
    statuses: list[int] = field(default_factory=list)  # HTTP status of each step
    said: list[tuple[str, str]] = field(default_factory=list)  # (language, text) of each <Say> heard
    recording: Recording | None = None  # registered at the fake (completed or failed recordings)
    recording_sid: str | None = None  # the RecordingSid reported, also for an absent recording
    ended_by: str = ""  # "hangup-verb", "caller-hangup", "end-of-twiml", "dial-connected"


@dataclass
class _Call:
    session: aiohttp.ClientSession
    gateway_url: str
    public_url: str
    auth_token: str
    params: dict[str, str]
    fake: FakeTwilio
    wav: bytes | None
    dial_outcome: str
    hangup_during_greeting: bool
    recording_status: str
    digits: str
    trace: CallTrace
    recording_start: datetime | None = None
    repeat_status_callback: int = 1

    def call_params(self, **extra: str) -> dict[str, str]:
        """The standard call parameters every voice webhook carries, plus ``extra``."""
        return {**self.params, **extra}

    async def post(self, url: str, params: dict[str, str]) -> str:
        """POST ``params`` to ``url``, signed as Twilio would."""
        if len(self.trace.steps) >= MAX_REQUESTS:
            raise SimulationError(f"more than {MAX_REQUESTS} webhook requests: the flow does not end")
        public = self.public_url.rstrip("/")
        if not url.startswith(public + "/"):
            raise SimulationError(f"TwiML points at {url}, outside the public URL {public}")
        # https://www.twilio.com/docs/usage/security#validating-requests: HMAC over URL + sorted params.
        headers = {SIGNATURE_HEADER: sign(self.auth_token, url, params), "User-Agent": "TwilioProxy/1.1"}
        target = self.gateway_url.rstrip("/") + url[len(public) :]
        # encoded=True: request the URL exactly as the TwiML wrote it (Twilio signs that string);
        # yarl would otherwise normalise escapes such as %2F in the query.
        async with self.session.post(URL(target, encoded=True), data=params, headers=headers) as response:
            body = await response.text()
            self.trace.steps.append((url, body))
            self.trace.statuses.append(response.status)
            if not 200 <= response.status < 300:
                raise SimulationError(f"{url} answered HTTP {response.status}: {body[:200].strip()}")
        return body

    async def run(self, url: str, document: str) -> None:
        """Execute the verbs of one TwiML document, following Dial/Redirect/Record actions."""
        root = ET.fromstring(document)  # noqa: S314 - the gateway under test wrote it
        if root.tag != "Response":
            raise SimulationError(f"{url} did not answer with <Response>: {document[:200]}")
        verbs = list(root)
        for index, verb in enumerate(verbs):
            if verb.tag == "Say":
                self.trace.said.append((verb.get("language", "en-US"), verb.text or ""))
                if self.hangup_during_greeting and any(v.tag == "Record" for v in verbs[index + 1 :]):
                    self.trace.ended_by = "caller-hangup"
                    return
            elif verb.tag in ("Play", "Pause"):
                continue
            elif verb.tag == "Gather":
                # No key is pressed: Twilio plays the nested verbs, waits ``timeout`` and falls through
                # to the next verb (https://www.twilio.com/docs/voice/twiml/gather#nest-other-verbs).
                for child in verb:
                    if child.tag == "Say":
                        self.trace.said.append((child.get("language", "en-US"), child.text or ""))
                if self.hangup_during_greeting and any(v.tag == "Record" for v in verbs[index + 1 :]):
                    self.trace.ended_by = "caller-hangup"
                    return
                if verb.get("actionOnEmptyResult") == "true" and verb.get("action"):
                    target = urljoin(url, verb.get("action") or "")
                    await self.run(target, await self.post(target, self.call_params(Digits="")))
                    return
            elif verb.tag in ("Hangup", "Reject"):
                self.trace.ended_by = "hangup-verb"
                return
            elif verb.tag == "Redirect":
                target = urljoin(url, (verb.text or "").strip())
                await self.run(target, await self.post(target, self.call_params()))
                return
            elif verb.tag == "Dial":
                if await self._dial(url, verb):
                    return
            elif verb.tag == "Record":
                if await self._record(url, verb):
                    return
            else:
                raise SimulationError(f"the simulator cannot follow <{verb.tag}> from {url}")
        self.trace.ended_by = self.trace.ended_by or "end-of-twiml"

    async def _dial(self, url: str, verb: ET.Element) -> bool:
        """Ring the <Number>; returns True when the action's TwiML took over the call."""
        connected = self.dial_outcome in ("completed", "answered")
        # https://www.twilio.com/docs/voice/twiml/dial#action: DialCallStatus, DialCallSid, DialCallDuration.
        extra = {
            "CallStatus": "in-progress",
            "DialCallStatus": self.dial_outcome,
            "DialCallSid": new_sid("CA"),
            "DialCallDuration": "42" if connected else "0",
        }
        action = verb.get("action")
        if action is None:
            return False  # no action: Twilio continues with the next verb
        target = urljoin(url, action)
        await self.run(target, await self.post(target, self.call_params(**extra)))
        if connected and self.trace.ended_by in ("hangup-verb", "end-of-twiml"):
            self.trace.ended_by = "dial-connected"
        return True

    async def _record(self, url: str, verb: ET.Element) -> bool:
        """Record the caller; returns True when the call ended or the action's TwiML took over."""
        status = self.recording_status
        recording: Recording | None = None
        if status == "absent":
            recording_sid, duration = new_sid("RE"), 0
        else:
            recording = self.fake.add_recording(
                self.wav or b"",
                call_sid=self.params["CallSid"],
                status=status,
                start_time=self.recording_start,
            )
            recording_sid, duration = recording.sid, recording.duration
            self.trace.recording = recording
        self.trace.recording_sid = recording_sid
        recording_url = self.fake.recording_url(recording) if recording is not None else ""
        caller_gone = self.digits == "hangup"
        follow_up = ""
        action = verb.get("action")
        # Older behaviour: an empty recording skips the action and continues with the next verb.
        if action is not None and status != "absent":
            # https://www.twilio.com/docs/voice/twiml/record#action
            follow_up = await self.post(
                urljoin(url, action),
                self.call_params(
                    CallStatus="completed" if caller_gone else "in-progress",
                    RecordingUrl=recording_url,
                    RecordingSid=recording_sid,
                    RecordingDuration=str(duration),
                    Digits=self.digits,
                ),
            )
        callback = verb.get("recordingStatusCallback")
        events = (verb.get("recordingStatusCallbackEvent") or "completed").split()
        if callback is not None and (status != "absent" or "absent" in events):
            # Twilio may deliver a callback more than once; repeat_status_callback plays that.
            for _ in range(self.repeat_status_callback):
                await self._status_callback(urljoin(url, callback), recording, recording_sid, duration)
        if caller_gone and status != "absent":
            self.trace.ended_by = "caller-hangup"
            return True
        if follow_up:
            await self.run(urljoin(url, action or ""), follow_up)
            return True
        return False

    async def _status_callback(
        self, url: str, recording: Recording | None, recording_sid: str, duration: int
    ) -> None:
        """POST the recordingStatusCallback: only account, call and Recording* parameters."""
        # https://www.twilio.com/docs/voice/twiml/record#recordingstatuscallback
        started = recording.start_time if recording is not None else datetime.now(UTC)
        params = {
            "AccountSid": self.params["AccountSid"],
            "CallSid": self.params["CallSid"],
            "RecordingSid": recording_sid,
            "RecordingUrl": self.fake.recording_url(recording) if recording is not None else "",
            "RecordingStatus": self.recording_status,
            "RecordingDuration": str(duration),
            "RecordingChannels": "1",
            "RecordingStartTime": rfc2822(started),
            "RecordingSource": "RecordVerb",
            "ErrorCode": "0",
        }
        await self.post(url, params)


async def simulate_call(
    *,
    gateway_url: str,
    public_url: str,
    account_sid: str,
    auth_token: str,
    fake: FakeTwilio,
    caller: str | None,
    called: str,
    wav: bytes | None,
    caller_name: str | None = None,
    dial_outcome: str = "no-answer",
    hangup_during_greeting: bool = False,
    recording_status: str = "completed",
    digits: str = "hangup",
    recording_start: datetime | None = None,
    repeat_status_callback: int = 1,
) -> CallTrace:
    """Call ``called`` from ``caller`` (None: withheld, sent as "anonymous") and follow the gateway.

    ``dial_outcome`` is the DialCallStatus a ``<Dial>`` ends with; ``recording_status`` is what the
    recording callback reports (completed, absent, failed); ``digits`` ends the ``<Record>``
    ("hangup": the caller hangs up, "#": the caller pressed the pound key and stays on the line).
    Raises SimulationError when the gateway answers anything but 2xx.
    """
    call_sid = new_sid("CA")
    sender = caller if caller is not None else "anonymous"
    # https://www.twilio.com/docs/voice/twiml#request-parameters: Twilio sends geographic fields
    # empty when unknown; they are signed like everything else.
    params = {
        "AccountSid": account_sid,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Called": called,
        "Caller": sender,
        "Direction": "inbound",
        "From": sender,
        "To": called,
        "FromCity": "",
        "FromCountry": "",
        "FromState": "",
        "FromZip": "",
        "ToCity": "",
        "ToCountry": "",
        "ToState": "",
        "ToZip": "",
    }
    if caller_name is not None:
        params["CallerName"] = caller_name
    trace = CallTrace(call_sid=call_sid)
    voice_url = public_url.rstrip("/") + "/twilio/voice"
    async with aiohttp.ClientSession() as session:
        call = _Call(
            session=session,
            gateway_url=gateway_url,
            public_url=public_url,
            auth_token=auth_token,
            params=params,
            fake=fake,
            wav=wav,
            dial_outcome=dial_outcome,
            hangup_during_greeting=hangup_during_greeting,
            recording_status=recording_status,
            digits=digits,
            trace=trace,
            recording_start=recording_start,
            repeat_status_callback=repeat_status_callback,
        )
        await call.run(voice_url, await call.post(voice_url, call.call_params()))
    return trace


# -- the gateway down: the number's fallback TwiML ---------------------------------------------------
# Twilio fetches the fallback URL when the voice URL fails (https://www.twilio.com/docs/usage/webhooks/
# voice-webhooks#fallback-urls); with a TwiML Bin nothing of ours runs. ``play_fallback`` plays such a
# document as Twilio would: ``<Say>`` is heard, ``<Record>`` stores the caller's audio in the account
# (the fake's recording list, with the call, so ``vm2mail reconcile`` can map it to the dialled number),
# the action is not followed (it only hangs up), ``<Hangup>`` ends the call.


class FallbackError(ValueError):
    """The document holds a verb a static fallback cannot carry out (it would need the gateway)."""


@dataclass
class FallbackCall:
    call_sid: str
    said: list[str] = field(default_factory=list)
    recording: Recording | None = None
    hung_up: bool = False


STATIC_VERBS = frozenset({"Say", "Play", "Pause", "Record", "Hangup"})


def play_fallback(fake: FakeTwilio, document: str, *, to: str, caller: str, wav: bytes) -> FallbackCall:
    """Run ``document`` for a call from ``caller`` to ``to`` who speaks ``wav`` after the beep."""
    root = ET.fromstring(document)  # noqa: S314 - TwiML printed by `vm2mail fallback-twiml`
    if root.tag != "Response":
        raise FallbackError("the fallback TwiML must be a <Response>")
    call = FallbackCall(call_sid=new_sid("CA"))
    fake.add_call(call.call_sid, to=to, caller=caller)
    for verb in root:
        if verb.tag not in STATIC_VERBS:
            raise FallbackError(f"<{verb.tag}> needs a live server; a fallback must not depend on one")
        if verb.tag == "Say":
            call.said.append(verb.text or "")
        elif verb.tag == "Record":
            callback = verb.get("recordingStatusCallback")
            if callback:
                raise FallbackError(f"recordingStatusCallback {callback} would need the gateway")
            call.recording = fake.add_recording(wav, call_sid=call.call_sid)
            if verb.get("action"):
                call.hung_up = True  # the action TwiML hangs up (HANGUP_URL)
                return call
        elif verb.tag == "Hangup":
            call.hung_up = True
            return call
    return call
