"""Notification and alert SMS through Twilio's Messages API, from ``twilio.sms_from``."""

from __future__ import annotations

import logging

from vm2mail.errors import TelephonyError
from vm2mail.notify.mail import NotifyError
from vm2mail.twilioapi.rest import TwilioRest

log = logging.getLogger(__name__)


async def send_sms(rest: TwilioRest, sender: str | None, to: str, body: str, *, what: str) -> str:
    """Send ``body`` to ``to``; the MessageSid. Logs the numbers, never the body.

    NotifyError when no ``twilio.sms_from`` is configured (permanent) or Twilio refused it: temporary
    unless Twilio's error code says the number can never receive it (21211, 21610, 21614, …).
    """
    if not sender:
        raise NotifyError(f"{what}: SMS to {to} not sent: twilio.sms_from is not configured", temporary=False)
    try:
        sid = await rest.send_sms(sender, to, body)
    except TelephonyError as exc:
        raise NotifyError(f"{what}: {exc}", temporary=exc.temporary) from exc
    log.info("%s: SMS %s sent from %s to %s", what, sid, sender, to)
    return sid
