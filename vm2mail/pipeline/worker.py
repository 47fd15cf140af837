"""Spool workers: turn each acknowledged job into a voicemail in every target folder, exactly once."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from vm2mail import logsetup, metrics
from vm2mail.audio.tags import VoicemailTags, write_tags
from vm2mail.audio.transcode import Encoded, transcode_to_mp3
from vm2mail.backoff import backoff as retry_delay
from vm2mail.config.model import Config, Mailbox
from vm2mail.crypto import pgp
from vm2mail.crypto.pgp import Encryptor
from vm2mail.errors import AudioError, CryptoError, MailStoreError, SpoolError, TelephonyError, Vm2mailError
from vm2mail.jobs import jobs
from vm2mail.jobs.jobs import Job
from vm2mail.jobs.spool import Spool
from vm2mail.mailstore.store import ImapStore
from vm2mail.pipeline import callstatus, wording
from vm2mail.pipeline.message import Voicemail, compose
from vm2mail.priority import run_batch
from vm2mail.signing import reply_address
from vm2mail.twilioapi.fetch import fetch_recording

log = logging.getLogger(__name__)

GIVE_UP_AFTER = 7 * 24 * 3600  # a job failing temporarily for a week goes to failed/ (kept, retryable)
MAX_BACKOFF = 600.0

# Called with (job, target mailbox, APPENDUID) after each delivery; the watcher and metrics hook in here.
DeliveredHook = Callable[[Job, Mailbox, int], Awaitable[None]]
RecordingDeleter = Callable[[str], Awaitable[None]]
# Alerts the admin (subject, text); Notifier.alert_admin fits. Never given decrypted content or secrets.
AdminAlert = Callable[[str, str], Awaitable[None]]


_DOMAINS: tuple[tuple[type[Vm2mailError], str], ...] = (
    (AudioError, "audio"),
    (CryptoError, "crypto"),
    (MailStoreError, "imap"),
    (SpoolError, "spool"),
    (TelephonyError, "twilio"),
)


def failure_reason(exc: Vm2mailError) -> str:
    """The ``reason`` label of vm2mail_failures_total: the failure domain and whether it is retried."""
    domain = next((name for kind, name in _DOMAINS if isinstance(exc, kind)), "other")
    return f"{domain}_{'temporary' if exc.temporary else 'permanent'}"


def backoff(attempts: int) -> float:
    """Exponential backoff with jitter: 2 s, 4 s, 8 s … capped at 10 minutes."""
    return retry_delay(attempts + 1, first=2.0, cap=MAX_BACKOFF)


@dataclass
class Pipeline:
    config: Callable[[], Config]
    spool: Spool
    store: ImapStore
    http: aiohttp.ClientSession
    delete_recording: RecordingDeleter
    on_delivered: DeliveredHook | None = None
    alert_admin: AdminAlert | None = None
    # TwilioRest.call_taken: why an ended call needs no missed-call mail (pipeline/callstatus.py).
    call_taken: Callable[[str], Awaitable[str | None]] | None = None
    _alerted: set[tuple[str, str]] = field(default_factory=set)  # (mailbox, key problem) alerted once

    async def run(self, workers: int) -> None:
        async with asyncio.TaskGroup() as group:
            for n in range(workers):
                group.create_task(self._loop(), name=f"worker-{n}")

    async def _loop(self) -> None:
        while True:
            job = await self.spool.claim()
            await self.handle(job)

    async def handle(self, job: Job) -> None:
        """Process one claimed job and leave it in done/, failed/ or back in new/ for a retry."""
        # Every log record of this job carries its ids (vm2mail.logsetup), threads included.
        with logsetup.context(call_id=job.call.call_sid, job_id=job.id, message_id=job.message_id):
            await self._handle(job)

    async def _handle(self, job: Job) -> None:
        started = time.monotonic()
        try:
            await self.process(job)
        except Vm2mailError as exc:
            await self._settle_failure(job, exc, str(exc))
        except asyncio.CancelledError:
            raise  # shutdown: serve gives the job back to new/ (Spool.release_claimed_sync)
        except Exception as exc:  # a bug must not lose the job: keep it, retry, and say so loudly
            log.exception("job=%s unexpected error", job.id)
            await self._settle_failure(job, Vm2mailError(repr(exc), temporary=True), repr(exc))
        else:
            await asyncio.to_thread(self.spool.finish_sync, job)
            if job.queued_at is not None:
                metrics.PIPELINE_SECONDS.observe(max(0.0, time.time() - job.queued_at))
            log.info(
                "job=%s call=%s message_id=%s delivered to %s in %.2fs",
                job.id,
                job.call.call_sid,
                job.message_id,
                ",".join(job.delivered) or "-",
                time.monotonic() - started,
            )

    async def _settle_failure(self, job: Job, exc: Vm2mailError, reason: str) -> None:
        metrics.FAILURES.labels(reason=failure_reason(exc)).inc()
        # Measured from when the job entered the spool (imports carry dates from years ago).
        since = job.queued_at if job.queued_at is not None else job.started.timestamp()
        if exc.temporary and time.time() - since < GIVE_UP_AFTER:
            delay = backoff(job.attempts)
            log.warning(
                "job=%s call=%s temporary failure (attempt %d), retry in %.0fs: %s",
                job.id,
                job.call.call_sid,
                job.attempts + 1,
                delay,
                reason,
            )
            await asyncio.to_thread(self.spool.retry_sync, job, delay, reason)
        else:
            log.error(
                "job=%s call=%s FAILED, moved to %s: %s",
                job.id,
                job.call.call_sid,
                self.spool.dir("failed"),
                reason,
            )
            await asyncio.to_thread(self.spool.fail_sync, job, reason)

    def _workdir(self, job: Job) -> Path:
        return self.spool.root / "work" / job.id

    async def process(self, job: Job) -> None:
        config = self.config()
        mailbox = config.mailboxes.get(job.mailbox)
        if mailbox is None:
            raise Vm2mailError(f"mailbox {job.mailbox} is not in the configuration", temporary=False)
        if job.source == callstatus.SOURCE and (reason := await self._call_taken(config, job, mailbox)):
            log.info("job=%s call=%s no missed-call mail: %s", job.id, job.call.call_sid, reason)
            job.history.append(f"no missed-call e-mail: {reason}")
            return
        workdir = self._workdir(job)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            try:
                encoded = (
                    await self._audio(config, job, mailbox, workdir) if job.kind == jobs.VOICEMAIL else None
                )
            except TelephonyError as exc:
                # Scale-out: another gateway got the same callback, delivered and deleted the recording.
                if exc.temporary or not await self._everywhere(config, job, mailbox):
                    raise
                log.info("job=%s recording gone, %s already in every folder", job.id, job.message_id)
                job.history.append(f"recording gone ({exc}); already delivered (by another gateway)")
                return
            if job.kind == jobs.MISSED_CALL and not mailbox.missed_call_email:
                job.history.append("missed call: no e-mail (missed_call_email is off)")
            else:
                for target in config.delivery_targets(mailbox):
                    if target.id not in job.delivered:
                        await self._deliver(config, job, mailbox, target, encoded)
            if job.recording_sid and config.twilio.delete_recordings and not job.recording_deleted:
                try:
                    await self.delete_recording(job.recording_sid)
                    job.recording_deleted = True
                except Vm2mailError as exc:
                    if exc.temporary:
                        raise  # retried later; deliveries already done are skipped by job.delivered
                    # Delivered is delivered: a refused delete must not park the voicemail in failed/.
                    log.error("job=%s recording %s not deleted at Twilio: %s", job.id, job.recording_sid, exc)
                    job.history.append(f"recording not deleted at Twilio: {exc}")
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)

    async def _call_taken(self, config: Config, job: Job, mailbox: Mailbox) -> str | None:
        """Whether a call that ended without a recording callback was taken care of after all."""
        for target in config.delivery_targets(mailbox):
            if await self.store.has_header(target, target.folder, "X-Vm2mail-Call-Id", job.call.call_sid):
                return f"a message for this call is in {target.id}/{target.folder}"
        return await self.call_taken(job.call.call_sid) if self.call_taken is not None else None

    async def _everywhere(self, config: Config, job: Job, mailbox: Mailbox) -> bool:
        """Whether every target folder already holds ``job.message_id`` (one UID SEARCH per target)."""
        for target in config.delivery_targets(mailbox):
            if await self.store.find_message_id(target, target.folder, job.message_id) is None:
                return False
        return True

    async def _audio(self, config: Config, job: Job, mailbox: Mailbox, workdir: Path) -> Encoded | None:
        """Fetch and encode the recording; a silent or too-short one turns the job into a missed call."""
        source = self.spool.blob_path(job)
        if source is None:
            if not job.recording_url or not job.recording_sid:
                raise AudioError("job has neither a recording URL nor audio", temporary=False)
            source = workdir / "recording.wav"
            with metrics.STAGE_SECONDS.labels(stage="fetch").time():
                # By SID from api_base_url: the URL stored in the job is never fetched (fetch.py).
                await fetch_recording(self.http, config.twilio, job.recording_sid, source)
        with metrics.STAGE_SECONDS.labels(stage="transcode").time():
            encoded = await transcode_to_mp3(source, workdir / "voicemail.mp3")
        if encoded.silent or encoded.duration < mailbox.min_message_seconds:
            why = "silent" if encoded.silent else f"{encoded.duration:.1f}s long"
            log.info("job=%s call=%s recording is %s: a missed call", job.id, job.call.call_sid, why)
            job.history.append(f"recording is {why}: delivered as a missed call")
            job.kind = jobs.MISSED_CALL
            return None
        # One MP3 serves every copy of a group's voicemail: it speaks the called mailbox's language
        # and shows its local time (ID3 TDRC has no zone; the "recorded" TXXX keeps the offset).
        tags = VoicemailTags(
            title=wording.title(job.call, mailbox),
            caller=job.call.caller,
            caller_name=job.call.caller_name,
            called=job.call.called,
            date=job.started.astimezone(mailbox.tz),
            duration=encoded.duration,
            mailbox=mailbox.id,
            call_id=job.call.call_sid,
            comment=wording.comment(job.call, mailbox, job.started),
            artist=wording.who(job.call, mailbox),
            extension=job.call.extension,
        )
        await run_batch(write_tags, encoded.path, tags)
        return encoded

    async def _deliver(
        self, config: Config, job: Job, mailbox: Mailbox, target: Mailbox, encoded: Encoded | None
    ) -> None:
        encryptor = pgp.encryptor(config.gpg.home) if target.encrypted else None
        extra: tuple[str, ...] = (
            (config.gpg.playback_key,) if target.phone_playback and config.gpg.playback_key else ()
        )
        warning = None
        if encryptor is not None:
            recipients, extra, warning = await self._usable_keys(job, target, encryptor, extra)
            if not recipients:
                encryptor = None  # allow_plain and no usable key: deliver readable, with a warning
            if recipients != target.gpg_recipients:
                target = dataclasses.replace(target, gpg_recipients=recipients)
        voicemail = Voicemail(
            kind=job.kind,
            recipient=target,
            mailbox=mailbox,
            message_id=job.message_id,
            call=job.call,
            started=job.started,
            duration=encoded.duration if encoded else job.recording_duration,
            mail_domain=config.server.mail_domain,
            mp3=encoded.path if encoded else None,
            reply_to=reply_address(config, target, job.call.caller),  # None without smtp_ingress
        )
        with metrics.STAGE_SECONDS.labels(stage="compose").time():
            message = await run_batch(
                compose,
                voicemail,
                templates_dir=config.templates_dir,
                encryptor=encryptor,
                extra_recipients=extra,
            )
        if warning is not None:
            # Prepended as the first header field (RFC 5322 §2.2), so every mail client can show it.
            message = f"X-Vm2mail-Warning: {warning}\r\n".encode() + message
        with metrics.STAGE_SECONDS.labels(stage="append").time():
            uid = await self.store.deliver(
                target,
                target.folder,
                message,
                message_id=job.message_id,
                internal_date=job.started,
                flags=("\\Seen",) if job.seen else (),
            )
        metrics.DELIVERIES.inc()
        job.delivered.append(target.id)
        await asyncio.to_thread(self.spool.checkpoint_sync, job)
        log.info(
            "job=%s call=%s message_id=%s appended to %s/%s uid=%d",
            job.id,
            job.call.call_sid,
            job.message_id,
            target.id,
            target.folder,
            uid,
        )
        if self.on_delivered is not None:
            await self.on_delivered(job, target, uid)

    async def _usable_keys(
        self, job: Job, target: Mailbox, encryptor: Encryptor, extra: tuple[str, ...]
    ) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
        """(usable mailbox keys, usable extra keys, warning) for ``target``, or raise to wait.

        An unusable key (missing, expired, revoked) is the admin's to fix, so the voicemail waits in
        the spool (a temporary failure, retried with backoff) and the admin is alerted once per key
        problem, unless the mailbox has ``allow_plain``: then it goes to the keys that still work, or
        unencrypted when none does, marked with a warning header.
        """
        problems: dict[str, str] = {}
        for fpr in (*target.gpg_recipients, *extra):
            if (problem := await asyncio.to_thread(encryptor.check_key, fpr)) is not None:
                problems[fpr] = problem
        if not problems:
            return target.gpg_recipients, extra, None
        detail = "; ".join(f"key {fpr}: {problem}" for fpr, problem in problems.items())
        if not target.allow_plain:
            await self._alert(
                target,
                detail,
                f"Voicemails for mailbox {target.id} ({target.name}) are waiting in the spool because a "
                f"configured key is not usable: {detail}.\nImport a valid key (vm2mail keys import) or "
                "fix the configuration; waiting voicemails are then delivered by the next retry.",
            )
            raise CryptoError(f"mailbox {target.id}: {detail}; waiting for a usable key", temporary=True)
        usable = tuple(f for f in target.gpg_recipients if f not in problems)
        warning = (
            f"not encrypted to every configured key ({detail})"
            if usable
            else f"delivered unencrypted: no usable key ({detail})"
        )
        log.warning(
            "job=%s call=%s mailbox %s (allow_plain): %s", job.id, job.call.call_sid, target.id, warning
        )
        job.history.append(f"mailbox {target.id}: {warning}")
        await self._alert(target, detail, f"Mailbox {target.id} ({target.name}): {warning}.")
        return usable, tuple(f for f in extra if f not in problems), warning

    async def _alert(self, target: Mailbox, detail: str, text: str) -> None:
        if self.alert_admin is None or (target.id, detail) in self._alerted:
            return
        self._alerted.add((target.id, detail))
        try:
            await self.alert_admin(f"vm2mail: mailbox {target.id} has an unusable key", text)
        except Exception:  # an alert failing must not change the job's fate
            log.exception("alerting the admin about mailbox %s failed", target.id)
