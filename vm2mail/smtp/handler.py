"""SMTP policy (RFC 5321): who may send, which recipients exist, and DATA into the spool before ``250``."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from vm2mail.config.model import Config, Mailbox
from vm2mail.errors import AudioError, SpoolError
from vm2mail.jobs.jobs import VOICEMAIL, CallInfo, Job
from vm2mail.jobs.spool import Spool
from vm2mail.metrics import SMTP_MESSAGES
from vm2mail.replies import ReplyTarget
from vm2mail.smtp import pbx
from vm2mail.smtp.replies import PREFIX, EmailReplies, ReplyRefused, verify_token

log = logging.getLogger(__name__)


class VmEnvelope(Envelope):
    """aiosmtpd's envelope plus what RCPT decided: voicemail mailboxes, or one reply target."""

    def __init__(self) -> None:
        super().__init__()
        self.mailboxes: list[str] = []
        self.reply: ReplyTarget | None = None


def peer_host(session: Session) -> str | None:
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


def job_id_for(message_key: str, mailbox_id: str) -> str:
    """Deterministic: the same e-mail retried (after a lost ``250``) finds its job already in the spool."""
    return "smtp-" + hashlib.sha256(f"{message_key}\0{mailbox_id}".encode()).hexdigest()[:32]


class IngressHandler:
    """aiosmtpd handler hooks; every refusal is a reply line that tells the client why."""

    def __init__(self, config: Callable[[], Config], spool: Spool, replies: EmailReplies) -> None:
        self.config = config
        self.spool = spool
        self.replies = replies

    # -- who may send ------------------------------------------------------------------------------------
    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        """AUTH PLAIN/LOGIN (RFC 4954) against ``smtp_ingress.users``, compared in constant time."""
        ingress = self.config().smtp_ingress
        if ingress is None or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode(errors="replace")
        expected = ingress.users.get(login)
        # Compare even for unknown users so the reply time does not reveal which names exist.
        match = hmac.compare_digest(auth_data.password, (expected or "\0").encode())
        if expected is None or not match:
            log.warning("smtp AUTH failed for user %r from %s", login, peer_host(session))
            SMTP_MESSAGES.labels(result="auth_failed").inc()
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=login)

    def trusted(self, session: Session) -> bool:
        """Authenticated, or connecting from one of ``allowed_networks``."""
        if session.authenticated:
            return True
        ingress = self.config().smtp_ingress
        host = peer_host(session)
        if ingress is None or host is None:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in ipaddress.ip_network(net, strict=False) for net in ingress.allowed_networks)

    # -- recipients ------------------------------------------------------------------------------------
    def mailbox_named(self, config: Config, local: str) -> Mailbox | None:
        local = local.lower()
        for box in config.mailboxes.values():
            if local == box.id.lower() or local in (alias.lower() for alias in box.aliases):
                return box
        return None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        assert isinstance(envelope, VmEnvelope)
        config = self.config()
        ingress = config.smtp_ingress
        assert ingress is not None
        local, _, domain = address.rpartition("@")
        domain = domain.lower()
        if domain == ingress.reply_domain and local.lower().startswith(PREFIX):
            if envelope.mailboxes or envelope.reply is not None:
                return "452 4.5.3 Send each reply to a caller in a message of its own"
            try:
                envelope.reply = verify_token(config, local[len(PREFIX) :])
            except ReplyRefused as refused:
                SMTP_MESSAGES.labels(result="reply_refused").inc()
                log.info("smtp reply address refused from %s: %s", peer_host(session), refused.reply)
                return refused.reply
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 Reply address OK"
        if domain in ingress.domains or domain == config.server.mail_domain:
            box = self.mailbox_named(config, local) if domain in ingress.domains else None
            if box is None:
                if local.lower() == "voicemail":
                    return (
                        "550 5.1.1 This voicemail cannot be answered: the caller's number was withheld "
                        "or cannot receive SMS"
                    )
                return f"550 5.1.1 <{address}>: no such mailbox"
            if not self.trusted(session):
                return "530 5.7.0 Authentication required to send voicemail to a mailbox"
            if envelope.reply is not None:
                return "452 4.5.3 Send each reply to a caller in a message of its own"
            if box.id not in envelope.mailboxes:
                envelope.mailboxes.append(box.id)
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 OK"
        SMTP_MESSAGES.labels(result="relay_denied").inc()
        return f"550 5.7.1 <{address}>: relay access denied; this server only takes mail for its mailboxes"

    # -- the message -----------------------------------------------------------------------------------
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope, VmEnvelope)
        raw = envelope.original_content or b""
        parsed = await asyncio.to_thread(pbx.parse_message, raw)
        if envelope.reply is not None:
            try:
                reply = await self.replies.handle(envelope.reply, parsed.message, raw)
            except ReplyRefused as refused:
                SMTP_MESSAGES.labels(result="reply_refused").inc()
                log.info("smtp reply for mailbox %s refused: %s", envelope.reply.mailbox.id, refused.reply)
                return refused.reply
            SMTP_MESSAGES.labels(result="reply_sent" if reply.startswith("250") else "temporary").inc()
            return reply
        return await self.voicemail(session, envelope, parsed, raw)

    async def voicemail(self, session: Session, envelope: VmEnvelope, parsed: pbx.Parsed, raw: bytes) -> str:
        config = self.config()
        ingress = config.smtp_ingress
        assert ingress is not None
        user = session.auth_data if isinstance(session.auth_data, str) else None
        rule = pbx.rule_for(ingress.clients, peer_host(session), user)
        # The PBX's country and zone are its users': the first recipient's (or the defaults').
        first = config.mailboxes.get(envelope.mailboxes[0]) if envelope.mailboxes else None
        country = first.country if first else config.defaults.country
        tz = first.tz if first else ZoneInfo(config.defaults.timezone)
        try:
            vm = pbx.parse(parsed, rule, now=datetime.now(UTC), country=country, tz=tz)
        except pbx.NotVoicemail as exc:
            SMTP_MESSAGES.labels(result="not_voicemail").inc()
            return f"554 5.6.0 Not a voicemail: {exc}"
        key = vm.message_id or "sha256:" + hashlib.sha256(raw).hexdigest()
        ids = {box: job_id_for(key, box) for box in envelope.mailboxes}
        if all(self.spool.known(job_id) for job_id in ids.values()):
            SMTP_MESSAGES.labels(result="duplicate").inc()
            return "250 2.0.0 Already queued: " + " ".join(ids.values())
        try:
            length = await pbx.check_audio(vm.audio, vm.suffix, self.spool.dir("tmp"))
        except AudioError as exc:
            SMTP_MESSAGES.labels(result="bad_audio").inc()
            if exc.temporary:
                log.error("smtp audio check failed: %s", exc)
                return "451 4.3.0 Cannot check the audio now; try again later"
            return f"554 5.6.1 Unreadable audio: {exc}"
        call_sid = "smtp-" + hashlib.sha256(key.encode()).hexdigest()[:24]
        try:
            for box_id, job_id in ids.items():
                box = config.mailboxes[box_id]
                job = Job(
                    id=job_id,
                    kind=VOICEMAIL,
                    source="smtp",
                    mailbox=box_id,
                    message_id=f"<{job_id}@{config.server.mail_domain}>",
                    call=CallInfo(
                        call_sid=call_sid,
                        called=box.numbers[0] if box.numbers else "",
                        caller=vm.caller,
                        caller_name=vm.caller_name,
                        extension=vm.extension,
                    ),
                    started_at=vm.started.isoformat(),
                    recording_duration=vm.duration if vm.duration is not None else round(length),
                )
                if await self.spool.submit(job, blob=vm.audio, blob_suffix=vm.suffix):
                    log.info(
                        "smtp job=%s call=%s mailbox=%s queued (%d bytes of audio, %.0fs)",
                        job_id, call_sid, box_id, len(vm.audio), length,
                    )  # fmt: skip
        except SpoolError as exc:
            SMTP_MESSAGES.labels(result="temporary").inc()
            log.error("smtp message for %s not queued: %s", ",".join(envelope.mailboxes), exc)
            return "451 4.3.0 The voicemail spool is unavailable; try again later"
        SMTP_MESSAGES.labels(result="accepted").inc()
        return "250 2.0.0 Queued as " + " ".join(ids.values())
