"""Find the account's Twilio recordings that never reached a mailbox and deliver them through the spool.

When the gateway was down as Twilio called back, the recording still sits in the account. Each one is
mapped to a mailbox by the number its call dialled, skipped when the spool knows its job or a target
folder holds its Message-ID (``<RecordingSid@mail_domain>``), else spooled as the same job the
recording callback would have made and delivered at once. Running it twice changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from vm2mail.config.model import Config, Mailbox
from vm2mail.durations import parse_duration
from vm2mail.errors import TelephonyError, Vm2mailError
from vm2mail.jobs.jobs import VOICEMAIL, CallInfo, Job, caller_number, sid_message_id, twilio_job_id
from vm2mail.pipeline.batch import Batch, job_state
from vm2mail.twilioapi.fetch import recording_url

log = logging.getLogger(__name__)

# Outcomes, one per recording, as `vm2mail reconcile` prints them.
DELIVERED = "delivered"
ALREADY_DELIVERED = "already delivered"
IN_SPOOL = "already in the spool"
NO_MAILBOX = "no mailbox for the called number"
NOT_COMPLETED = "not completed"
WAITING = "spooled, waiting for a retry"
FAILED = "failed"


def parse_since(text: str) -> timedelta:
    """``30m``, ``24h``, ``7d``, ``2w`` → a timedelta; ValueError for anything else."""
    since = parse_duration(text)
    if not since:  # None (not a duration) or zero
        raise ValueError(f"{text!r} is not a duration like 30m, 24h, 7d or 2w")
    return since


@dataclass(frozen=True, kw_only=True)
class Found:
    """One recording as the REST API lists it, with the call it belongs to."""

    sid: str
    call_sid: str
    status: str
    start_time: datetime
    duration: int | None
    called: str | None
    caller: str | None
    caller_name: str | None


@dataclass(frozen=True, kw_only=True)
class Outcome:
    recording_sid: str
    mailbox: str | None
    result: str  # one of the constants above
    detail: str = ""


class TwilioAccount:
    """Recordings and calls of the account through the official client (synchronous: use a thread)."""

    def __init__(self, config: Config) -> None:
        self._client: Any = Client(config.twilio.account_sid, config.twilio.auth_token)
        self._client.api.base_url = config.twilio.api_base_url  # FIELD-NOTES: a local stand-in in tests

    def recordings(self, since: datetime) -> list[Found]:
        """Every recording created at or after ``since`` (DateCreated>=, all pages), oldest first."""
        account = self._client.api.v2010.account
        try:
            # https://www.twilio.com/docs/voice/api/recording#read-multiple-recording-resources
            listed = account.recordings.list(date_created_after=since, page_size=100)
            calls: dict[str, Any] = {}
            found = []
            for rec in listed:
                if rec.call_sid not in calls:
                    calls[rec.call_sid] = self._call(rec.call_sid)
                call = calls[rec.call_sid]
                found.append(
                    Found(
                        sid=rec.sid,
                        call_sid=rec.call_sid,
                        status=str(rec.status or ""),
                        start_time=rec.start_time or rec.date_created or datetime.now(UTC),
                        duration=int(rec.duration) if str(rec.duration or "").isdigit() else None,
                        called=call.to if call else None,
                        caller=call._from if call else None,
                        caller_name=(call.caller_name or None) if call else None,
                    )
                )
        except TwilioRestException as exc:
            raise TelephonyError(f"Twilio REST API: HTTP {exc.status} {exc.msg}", temporary=True) from exc
        except OSError as exc:
            raise TelephonyError(f"Twilio REST API unreachable: {exc}", temporary=True) from exc
        return sorted(found, key=lambda f: f.start_time)

    def _call(self, call_sid: str) -> Any:
        try:
            return self._client.api.v2010.account.calls(call_sid).fetch()
        except TwilioRestException as exc:
            if exc.status == 404:
                return None  # the call record is gone: the recording cannot be mapped
            raise


def recording_job(config: Config, mailbox: Mailbox, found: Found) -> Job:
    """The job the recording callback would have spooled (same id and Message-ID, so dedupe works)."""
    return Job(
        id=twilio_job_id(found.sid),
        kind=VOICEMAIL,
        source="twilio",
        mailbox=mailbox.id,
        message_id=sid_message_id(found.sid, config.server.mail_domain),
        call=CallInfo(
            call_sid=found.call_sid,
            called=found.called or "",
            caller=caller_number(found.caller),
            caller_name=(found.caller_name or "").strip() or None,
        ),
        started_at=found.start_time.astimezone(UTC).isoformat(),
        recording_sid=found.sid,
        recording_url=recording_url(config.twilio, found.sid),
        recording_duration=found.duration,
        history=["reconciled: found in Twilio's recording list, never delivered"],
    )


async def _delivered_everywhere(batch: Batch, mailbox: Mailbox, message_id: str) -> bool:
    for target in batch.config.delivery_targets(mailbox):
        if await batch.pipeline.store.find_message_id(target, target.folder, message_id) is None:
            return False
    return True


async def reconcile(batch: Batch, since: datetime) -> list[Outcome]:
    """List recordings since ``since`` and deliver those missing; one Outcome per recording."""
    config = batch.config
    found = await asyncio.to_thread(TwilioAccount(config).recordings, since)
    outcomes: list[Outcome] = []
    for rec in found:
        mailbox = config.mailbox_for_number(rec.called) if rec.called else None
        if rec.status != "completed":
            outcomes.append(
                Outcome(recording_sid=rec.sid, mailbox=None, result=NOT_COMPLETED, detail=rec.status)
            )
            continue
        if mailbox is None:
            outcomes.append(
                Outcome(recording_sid=rec.sid, mailbox=None, result=NO_MAILBOX, detail=rec.called or "?")
            )
            continue
        job = recording_job(config, mailbox, rec)
        state = job_state(batch.spool, job.id)
        if state is not None and state != "new":
            outcomes.append(Outcome(recording_sid=rec.sid, mailbox=mailbox.id, result=IN_SPOOL, detail=state))
            continue
        if state is None:
            try:
                if await _delivered_everywhere(batch, mailbox, job.message_id):
                    outcomes.append(
                        Outcome(recording_sid=rec.sid, mailbox=mailbox.id, result=ALREADY_DELIVERED)
                    )
                    continue
            except Vm2mailError as exc:
                outcomes.append(
                    Outcome(recording_sid=rec.sid, mailbox=mailbox.id, result=FAILED, detail=str(exc))
                )
                continue
            await asyncio.to_thread(batch.submit, job)
            log.info("job=%s call=%s reconciled recording spooled", job.id, rec.call_sid)
        end = await batch.deliver(job.id)
        if end == "done":
            outcomes.append(Outcome(recording_sid=rec.sid, mailbox=mailbox.id, result=DELIVERED))
        elif end == "failed":
            outcomes.append(
                Outcome(
                    recording_sid=rec.sid, mailbox=mailbox.id, result=FAILED, detail=batch.last_event(job.id)
                )
            )
        else:
            outcomes.append(
                Outcome(
                    recording_sid=rec.sid, mailbox=mailbox.id, result=WAITING, detail=batch.last_event(job.id)
                )
            )
    return outcomes
