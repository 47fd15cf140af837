"""At-most-once SMS replies to callers, from the owner's e-mail reply or the web inbox.

Layer: core. The SMTP edge (vm2mail.smtp.replies) and the web inbox (vm2mail.web.calls) translate
their wire to ``ReplySender.send_once``. May import: services, config, errors and the base modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from vm2mail.config.model import Config, Mailbox
from vm2mail.errors import TelephonyError
from vm2mail.jobs.spool import fsync_dir

log = logging.getLogger(__name__)

SendSms = Callable[[str, str, str], Awaitable[str]]


@dataclass(frozen=True)
class ReplyTarget:
    mailbox: Mailbox
    caller: str  # E.164
    expires_day: int


def reply_key(target: ReplyTarget, request: str) -> str:
    """The marker name of one reply: ``request`` (an e-mail's Message-ID, ``web:<id>`` from the inbox)
    to ``target``'s caller in its mailbox is sent at most once."""
    return hashlib.sha256(f"{target.mailbox.id}\0{target.caller}\0{request}".encode()).hexdigest()[:32]


@dataclass
class ReplySender:
    """Sends each reply's SMS at most once, recording it durably first.

    A marker file (``O_EXCL``, fsynced) is written before sending: a retried or duplicated reply finds it
    and is not sent again. If the process dies between the marker and the SMS, the retry is not sent
    either: at most once, never twice.
    """

    config: Callable[[], Config]
    send_sms: SendSms
    root: Path  # <spool>/replies

    async def send_once(self, target: ReplyTarget, text: str, request: str) -> str | None:
        """Send ``text`` to the caller at most once per ``request`` (the e-mail reply path and the web
        inbox), marked under ``reply_key(target, request)``.

        The SMS sid, or None when the request was sent (or claimed) before; TelephonyError when Twilio
        refused or failed, after releasing the claim so a later retry may send.
        """
        key = reply_key(target, request)
        sender = self.config().twilio.sms_from
        if not sender:
            raise TelephonyError("SMS replies are not configured (twilio.sms_from)", temporary=False)
        if not await asyncio.to_thread(self._claim, key, target):
            log.info("reply %s to mailbox %s already handled: not sent again", key, target.mailbox.id)
            return None
        try:
            sid = await self.send_sms(sender, target.caller, text)
        except TelephonyError as exc:
            await asyncio.to_thread(self._release, key)
            log.warning("reply %s for mailbox %s not sent: %s", key, target.mailbox.id, exc)
            raise
        await asyncio.to_thread(self._settle, key, sid)
        log.info("reply %s for mailbox %s sent as SMS %s", key, target.mailbox.id, sid)
        return sid

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def _claim(self, key: str, target: ReplyTarget) -> bool:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        record = {"state": "sending", "mailbox": target.mailbox.id, "at": time.time()}
        try:
            fd = os.open(self._path(key), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        try:
            os.write(fd, json.dumps(record).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(self.root)
        return True

    def _settle(self, key: str, sid: str) -> None:
        tmp = self.root / f".{key}.tmp"
        tmp.write_text(json.dumps({"state": "sent", "sid": sid, "at": time.time()}))
        os.replace(tmp, self._path(key))

    def _release(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()
        fsync_dir(self.root)
