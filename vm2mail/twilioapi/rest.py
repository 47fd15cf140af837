"""Twilio REST calls the gateway makes (delete recordings, send SMS), through the official client."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from vm2mail.config.model import TwilioConfig
from vm2mail.errors import TelephonyError

log = logging.getLogger(__name__)

# Twilio error codes after which sending the same SMS again cannot succeed
# (https://www.twilio.com/docs/api/errors): invalid number, unsubscribed, not SMS-capable, …
PERMANENT_SMS_ERRORS = frozenset({21211, 21408, 21610, 21612, 21614, 21602, 21606, 21617})


class TwilioRest:
    """A thin async face over ``twilio.rest.Client`` (which is synchronous: calls run in a thread)."""

    def __init__(self, twilio: TwilioConfig) -> None:
        # The client's own default is no timeout at all: one hung request would hold a worker forever.
        http = TwilioHttpClient(timeout=twilio.timeout_seconds)
        self._client: Any = Client(twilio.account_sid, twilio.auth_token, http_client=http)
        # FIELD-NOTES: setting the API domain's base_url redirects the REST client (local stand-in).
        self._client.api.base_url = twilio.api_base_url
        self.account_sid = twilio.account_sid

    async def delete_recording(self, recording_sid: str) -> None:
        """Delete a recording once every copy is in IMAP; already gone (404) counts as done."""

        def call() -> None:
            self._client.api.v2010.account.recordings(recording_sid).delete()

        try:
            await asyncio.to_thread(call)
        except TwilioRestException as exc:
            if exc.status == 404:
                log.info("recording %s was already deleted at Twilio", recording_sid)
                return
            raise TelephonyError(
                f"deleting recording {recording_sid} failed: HTTP {exc.status} {exc.msg}",
                temporary=exc.status >= 500 or exc.status == 429,
            ) from exc
        except OSError as exc:  # requests' ConnectionError is an OSError
            raise TelephonyError(f"deleting recording {recording_sid} failed: {exc}", temporary=True) from exc
        log.info("recording %s deleted at Twilio", recording_sid)

    async def send_sms(self, sender: str, to: str, body: str) -> str:
        """Send one SMS through the Messages API; its MessageSid.

        Raises TelephonyError, ``temporary`` unless Twilio refused the message itself (bad or
        unsubscribed number, not SMS-capable, …), so callers can retry only what may succeed later.
        """

        def call() -> str:
            message = self._client.api.v2010.account.messages.create(to=to, from_=sender, body=body)
            return str(message.sid)

        try:
            sid = await asyncio.to_thread(call)
        except TwilioRestException as exc:
            raise TelephonyError(
                f"SMS to {to} refused: HTTP {exc.status} code {exc.code}: {exc.msg}",
                temporary=exc.code not in PERMANENT_SMS_ERRORS and (exc.status >= 500 or exc.status == 429),
            ) from exc
        except OSError as exc:
            raise TelephonyError(f"SMS to {to} failed: {exc}", temporary=True) from exc
        log.info("SMS %s sent to %s", sid, to)
        return sid

    async def connect(self, owner: str, caller_id: str, twiml: str) -> str:
        """Ring ``owner`` from ``caller_id`` and run ``twiml`` when answered (the web inbox's "call me and
        connect me to the caller"); the CallSid. Raises TelephonyError like ``send_sms``."""

        def call() -> str:
            created = self._client.api.v2010.account.calls.create(to=owner, from_=caller_id, twiml=twiml)
            return str(created.sid)

        try:
            sid = await asyncio.to_thread(call)
        except TwilioRestException as exc:
            raise TelephonyError(
                f"call to {owner} refused: HTTP {exc.status} code {exc.code}: {exc.msg}",
                temporary=exc.status >= 500 or exc.status == 429,
            ) from exc
        except OSError as exc:
            raise TelephonyError(f"call to {owner} failed: {exc}", temporary=True) from exc
        log.info("call %s placed to %s", sid, owner)
        return sid

    async def call_taken(self, call_sid: str) -> str | None:
        """Why an ended call needs no missed-call e-mail (a recording exists, a forward was answered).

        Recordings of the call (https://www.twilio.com/docs/voice/api/recording#read-multiple-recording-
        resources, CallSid filter) and its child calls (ParentCallSid: the ``<Dial>`` legs).
        """

        def call() -> str | None:
            account = self._client.api.v2010.account
            for recording in account.recordings.list(call_sid=call_sid, limit=1):
                return f"recording {recording.sid} exists"
            for child in account.calls.list(parent_call_sid=call_sid, limit=20):
                if child.status == "completed":
                    return f"the forward was answered (call {child.sid})"
            return None

        try:
            return await asyncio.to_thread(call)
        except TwilioRestException as exc:
            raise TelephonyError(
                f"looking up call {call_sid}: HTTP {exc.status} {exc.msg}", temporary=True
            ) from exc
        except OSError as exc:
            raise TelephonyError(f"looking up call {call_sid}: {exc}", temporary=True) from exc
