"""TwiML documents for the voicemail call flow, built with the twilio library's VoiceResponse."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from twilio.twiml.voice_response import VoiceResponse

from vm2mail.config.model import Mailbox
from vm2mail.telephony.prompts import Prompt

# Paths of the webhooks this module points Twilio at; webhooks.py serves them.
VOICE_PATH = "/twilio/voice"
DIAL_DONE_PATH = "/twilio/dial-done"
RECORD_DONE_PATH = "/twilio/record-done"
RECORDING_PATH = "/twilio/recording"

# Seconds of silence that end a <Record> (https://www.twilio.com/docs/voice/twiml/record#timeout).
RECORD_SILENCE_TIMEOUT = 5


def absolute_url(public_url: str, path: str, **query: str) -> str:
    """``public_url`` + ``path`` + the URL-encoded query; Twilio signs this exact string back to us."""
    url = public_url.rstrip("/") + path
    return f"{url}?{urlencode(query)}" if query else url


@dataclass(frozen=True, kw_only=True)
class CallContext:
    """What the recording status callback cannot tell us by itself, carried in its (signed) URL.

    The recordingStatusCallback request holds only AccountSid, CallSid and the Recording* parameters
    (https://www.twilio.com/docs/voice/twiml/record#recordingstatuscallback), not From/To/CallerName.
    """

    mailbox_id: str
    called: str
    caller: str | None = None
    caller_name: str | None = None

    def query(self) -> dict[str, str]:
        return {
            "mb": self.mailbox_id,
            "from": self.caller or "",
            "to": self.called,
            "name": self.caller_name or "",
        }


def _say(response: VoiceResponse, prompt: Prompt) -> None:
    # https://www.twilio.com/docs/voice/twiml/say: language and voice are optional attributes.
    if prompt.voice:
        response.say(prompt.text, language=prompt.language, voice=prompt.voice)
    else:
        response.say(prompt.text, language=prompt.language)


def _xml(response: VoiceResponse) -> str:
    return str(response.to_xml())


def empty() -> str:
    """``<Response/>``: nothing more to do (the caller is already gone)."""
    return _xml(VoiceResponse())


def hangup() -> str:
    """End the call at once."""
    response = VoiceResponse()
    response.hangup()
    return _xml(response)


def say_and_hangup(prompt: Prompt) -> str:
    """Speak ``prompt``, then hang up (not-in-service, thanks, goodbye)."""
    response = VoiceResponse()
    _say(response, prompt)
    response.hangup()
    return _xml(response)


def forward(*, public_url: str, mailbox: Mailbox, forward_to: str, caller_id: str) -> str:
    """Ring ``forward_to`` for the mailbox's ring time, then let /twilio/dial-done decide.

    ``timeout`` is the ring time (Twilio adds about 5 s); ``answerOnBridge`` keeps the caller hearing
    ringing, not silence, until the callee answers; the ``action`` URL receives DialCallStatus
    (https://www.twilio.com/docs/voice/twiml/dial#attributes). ``callerId`` must be the caller's
    number or one of ours, so a withheld caller is presented as the called (Twilio) number.
    """
    response = VoiceResponse()
    dial = response.dial(
        timeout=mailbox.ring_seconds,
        action=absolute_url(public_url, DIAL_DONE_PATH, mb=mailbox.id),
        method="POST",
        caller_id=caller_id,
        answer_on_bridge=True,
    )
    dial.number(forward_to)
    return _xml(response)


def voicemail(
    *,
    public_url: str,
    mailbox: Mailbox,
    context: CallContext,
    greeting: Prompt,
    goodbye: Prompt,
    attempt: int = 1,
) -> str:
    """Greeting, beep, ``<Record>``; then a goodbye and hang-up for the old empty-recording behaviour.

    The ``action`` URL is requested when recording ends (``Digits=hangup`` when the caller hung up);
    the recording itself is announced to ``recordingStatusCallback`` once it is stored, with
    RecordingStatus ``completed``, ``absent`` (silence, nothing stored) or ``failed``
    (https://www.twilio.com/docs/voice/twiml/record#attributes). Older accounts skip the action on
    an empty recording and continue with the next verb, hence the goodbye after ``<Record>``.
    """
    response = VoiceResponse()
    _say(response, greeting)
    response.record(
        action=absolute_url(public_url, RECORD_DONE_PATH, mb=mailbox.id, attempt=str(attempt)),
        method="POST",
        max_length=mailbox.max_message_seconds,
        play_beep=True,
        timeout=RECORD_SILENCE_TIMEOUT,
        finish_on_key="#",
        trim="trim-silence",
        recording_status_callback=absolute_url(public_url, RECORDING_PATH, **context.query()),
        recording_status_callback_event="completed absent",
        recording_status_callback_method="POST",
    )
    _say(response, goodbye)
    response.hangup()
    return _xml(response)
