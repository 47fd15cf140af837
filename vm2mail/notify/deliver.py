"""Sending one notice's texts to its recipients (SMS via Twilio, e-mail via the relay): per-recipient
failures are logged and counted, never raised, and every message sent is counted in the metrics."""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from vm2mail import metrics
from vm2mail.config.model import Config
from vm2mail.notify.mail import NotifyError, send_mail
from vm2mail.notify.sms import send_sms
from vm2mail.notify.texts import Texts
from vm2mail.twilioapi.rest import TwilioRest

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    sent: int = 0
    temporary: int = 0
    permanent: int = 0


async def send_texts(
    config: Config,
    rest: TwilioRest | None,
    numbers: tuple[str, ...],
    addresses: tuple[str, ...],
    texts: Texts,
    kind: str,
    what: str,
) -> Outcome:
    """Send ``texts`` to ``numbers`` (SMS) and ``addresses`` (e-mail), one after the other; never raises.

    ``kind`` labels the metric (``notify``, ``alert``, ``outage``, …); ``what`` names the notice in logs.
    A recipient that cannot be reached (no Twilio client, no ``smtp_relay``) counts as permanent.
    """
    outcome = Outcome()

    async def attempt(channel: str, coro: Coroutine[Any, Any, object]) -> None:
        try:
            await coro
        except NotifyError as exc:
            if exc.temporary:
                outcome.temporary += 1
                log.warning("%s", exc)
            else:
                outcome.permanent += 1
                log.error("%s (permanent, not retried)", exc)
            return
        except Exception:  # a library surprise counts as temporary: the claim may be released
            outcome.temporary += 1
            log.exception("%s: %s failed unexpectedly", what, channel)
            return
        outcome.sent += 1
        metrics.NOTIFICATIONS.labels(channel, kind).inc()

    for number in numbers:
        if rest is None:
            outcome.permanent += 1
            log.error("%s: SMS to %s not sent: no Twilio client", what, number)
            continue
        await attempt("sms", send_sms(rest, config.twilio.sms_from, number, texts.sms, what=what))
    for address in addresses:
        if config.smtp_relay is None:
            outcome.permanent += 1
            log.error("%s: e-mail to %s not sent: no smtp_relay configured", what, address)
            continue
        await attempt("email", send_mail(config.smtp_relay, address, texts.subject, texts.body, what=what))
    return outcome
