"""TwiML documents for the voicemail call flow, built with the twilio library's VoiceResponse."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from twilio.twiml.voice_response import Gather, VoiceResponse

from vm2mail.config.model import Mailbox
from vm2mail.telephony.prompts import Prompt

# Paths of the webhooks this module points Twilio at; webhooks.py serves them.
VOICE_PATH = "/twilio/voice"
DIAL_DONE_PATH = "/twilio/dial-done"
RECORD_DONE_PATH = "/twilio/record-done"
RECORDING_PATH = "/twilio/recording"
MENU_PATH = "/twilio/menu"  # the phone menu (vm2mail/menu/routes.py)

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


@dataclass(frozen=True)
class Play:
    """A ``<Play>`` of audio at ``url`` (a signed, expiring media URL)."""

    url: str


Spoken = Prompt | Play


def _speak(parent: VoiceResponse | Gather, item: Spoken) -> None:
    if isinstance(item, Play):
        parent.play(item.url)
    elif item.voice:
        parent.say(item.text, language=item.language, voice=item.voice)
    else:
        parent.say(item.text, language=item.language)


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
    if forward_to.startswith(("sip:", "sips:")):
        dial.sip(forward_to)  # a PBX by SIP URI (https://www.twilio.com/docs/voice/twiml/sip)
    else:
        dial.number(forward_to)
    return _xml(response)


def voicemail(
    *,
    public_url: str,
    mailbox: Mailbox,
    context: CallContext,
    greeting: Spoken | None,
    goodbye: Prompt,
    attempt: int = 1,
    menu_action: str | None = None,
) -> str:
    """Greeting, beep, ``<Record>``; then a goodbye and hang-up for the old empty-recording behaviour.

    The ``action`` URL is requested when recording ends (``Digits=hangup`` when the caller hung up);
    the recording itself is announced to ``recordingStatusCallback`` once it is stored, with
    RecordingStatus ``completed``, ``absent`` (silence, nothing stored) or ``failed``
    (https://www.twilio.com/docs/voice/twiml/record#attributes). Older accounts skip the action on
    an empty recording and continue with the next verb, hence the goodbye after ``<Record>``.

    With ``menu_action`` the greeting plays inside ``<Gather numDigits=1 timeout=1>``: a key during
    the greeting posts to the menu (``*`` opens it, any other key records at once); no key falls
    through to ``<Record>`` (https://www.twilio.com/docs/voice/twiml/gather#nest-other-verbs).
    ``greeting`` may be a recorded greeting (``Play``) or None (straight to the beep).
    """
    response = VoiceResponse()
    if greeting is not None and menu_action is not None:
        gather = response.gather(
            action=menu_action, method="POST", input="dtmf", num_digits=1, timeout=1, finish_on_key=""
        )
        _speak(gather, greeting)
    elif greeting is not None:
        _speak(response, greeting)
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


# -- the phone menu ------------------------------------------------------------------------------------


def menu_page(
    *,
    action: str,
    items: Sequence[Spoken],
    num_digits: int | None = 1,
    timeout: int = 6,
    finish_on_key: str = "#",
) -> str:
    """Speak/play ``items`` inside a ``<Gather>`` so any key interrupts them, then wait for keys.

    ``actionOnEmptyResult`` makes Twilio post to ``action`` with empty Digits on a timeout too, so
    the menu can re-prompt (https://www.twilio.com/docs/voice/twiml/gather#actiononemptyresult).
    ``num_digits=None``: collect until ``finish_on_key`` (mailbox numbers, PINs).
    """
    response = VoiceResponse()
    gather = response.gather(
        action=action,
        method="POST",
        input="dtmf",
        timeout=timeout,
        finish_on_key=finish_on_key,
        action_on_empty_result=True,
        **({"num_digits": num_digits} if num_digits is not None else {}),
    )
    for item in items:
        _speak(gather, item)
    return _xml(response)


def speak_and_hangup(items: Sequence[Spoken]) -> str:
    """Speak ``items``, then hang up."""
    response = VoiceResponse()
    for item in items:
        _speak(response, item)
    response.hangup()
    return _xml(response)


def record_greeting(*, items: Sequence[Spoken], action: str, max_seconds: int, fallback: str) -> str:
    """Prompt, beep, ``<Record>`` a greeting (``#`` ends it); ``fallback`` if Twilio skips the action."""
    response = VoiceResponse()
    for item in items:
        _speak(response, item)
    response.record(
        action=action,
        method="POST",
        max_length=max_seconds,
        play_beep=True,
        timeout=RECORD_SILENCE_TIMEOUT,
        finish_on_key="#",
        trim="trim-silence",
    )
    response.redirect(fallback, method="POST")
    return _xml(response)


def dial_back(*, items: Sequence[Spoken], number: str, caller_id: str, action: str) -> str:
    """Call ``number`` back from the menu, presenting the mailbox number; ``action`` resumes the menu.

    ``callerId`` must be a number of this Twilio account (https://www.twilio.com/docs/voice/twiml/dial#callerid).
    """
    response = VoiceResponse()
    for item in items:
        _speak(response, item)
    dial = response.dial(action=action, method="POST", caller_id=caller_id)
    dial.number(number)
    return _xml(response)


def redirect(url: str) -> str:
    """``<Redirect>``: continue the call at ``url`` (Twilio POSTs the call parameters there)."""
    response = VoiceResponse()
    response.redirect(url, method="POST")
    return _xml(response)
