"""The stand-in Twilio answering a call with a number's fallback TwiML while the gateway is down.

Twilio fetches the fallback URL when the voice URL fails (https://www.twilio.com/docs/usage/webhooks/
voice-webhooks#fallback-urls); with a TwiML Bin nothing of ours runs. This plays the document as Twilio
would: ``<Say>`` is heard, ``<Record>`` stores the caller's audio in the account (the fake's recording
list, with the call, so ``vm2mail reconcile`` can map it to the dialled number), the action is not
followed (it only hangs up), ``<Hangup>`` ends the call.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from vm2mail.devstack.fake_twilio import FakeTwilio, Recording, new_sid


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
