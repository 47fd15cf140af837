"""Missed calls that left no recording: the number's call-status webhook, checked again a little later.

A caller who hangs up while the phone rings or during the greeting never reaches ``<Record>``, so no
recording callback comes. Twilio reports the end of every call to the phone number's "call status
changes" URL (https://www.twilio.com/docs/voice/api/call-resource#statuscallback). That callback is
spooled as a missed-call job that waits ``GRACE_SECONDS``; the worker then asks the system of record
whether the call was taken care of after all (a voicemail with this call id in the folder, a
recording still at Twilio, an answered forward) and writes the missed-call e-mail only if not. The
check uses only IMAP and Twilio's REST API, so it is right whichever gateway instance got which
callback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import datetime, timedelta

from vm2mail.config.model import Config
from vm2mail.jobs.jobs import MISSED_CALL, CallInfo, Job, sid_message_id

log = logging.getLogger(__name__)

CALL_STATUS_PATH = "/twilio/call-status"
SOURCE = "twilio-call"  # Job.source of these jobs
# Recording callbacks follow the end of the call within seconds; a minute and a half covers a slow one.
GRACE_SECONDS = 90.0
# Final CallStatus values (https://www.twilio.com/docs/voice/api/call-resource#call-status-values).
FINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


def call_status_job(
    *, config: Config, form: Mapping[str, str], caller: str | None, now: datetime
) -> Job | None:
    """The delayed missed-call job for a finished inbound call to a mailbox number, else None."""
    call_sid, status = form.get("CallSid", ""), form.get("CallStatus", "")
    if status not in FINAL or not form.get("Direction", "inbound").startswith("inbound"):
        return None
    mailbox = config.mailbox_for_number(form.get("To", ""))
    if mailbox is None or not mailbox.missed_call_email:
        return None
    if caller is not None and config.mailbox_for_owner(caller) is mailbox:
        return None  # the owner dialling in to the phone menu
    duration = int(form["CallDuration"]) if form.get("CallDuration", "").isdigit() else 0
    return Job(
        id=f"call-{call_sid}",
        kind=MISSED_CALL,
        source=SOURCE,
        mailbox=mailbox.id,
        message_id=sid_message_id(call_sid, config.server.mail_domain),
        call=CallInfo(
            call_sid=call_sid,
            called=form.get("To", ""),
            caller=caller,
            caller_name=form.get("CallerName", "").strip() or None,
        ),
        started_at=(now - timedelta(seconds=duration)).isoformat(),
        not_before=time.time() + GRACE_SECONDS,
        history=[f"call ended ({status}) without a recording callback so far"],
    )
