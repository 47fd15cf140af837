"""Twilio REST calls the gateway makes (delete a delivered recording), through the official client."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from vm2mail.config.model import TwilioConfig
from vm2mail.errors import TelephonyError

log = logging.getLogger(__name__)


class TwilioRest:
    """A thin async face over ``twilio.rest.Client`` (which is synchronous: calls run in a thread)."""

    def __init__(self, twilio: TwilioConfig) -> None:
        self._client: Any = Client(twilio.account_sid, twilio.auth_token)
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
