"""Greetings as plain e-mails with an audio attachment in ``<folder>/Greetings``; the newest one plays."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path

from vm2mail.audio.transcode import transcode_to_mp3
from vm2mail.config.model import Mailbox
from vm2mail.mailstore.connection import ImapConnection
from vm2mail.mailstore.store import ImapStore, Pool
from vm2mail.mailstore.voicemails import SEEN, Voicemails, uid_set

log = logging.getLogger(__name__)

SUBFOLDER = "Greetings"
SUBJECT = "Your voicemail greeting"
KIND = "greeting"  # X-Vm2mail-Kind: voicemail listings skip it, should it ever be listed
_BODY = (
    "This is your voicemail greeting: callers hear the attached recording.\r\n"
    "To change it, record a new one by phone or put another e-mail with an audio attachment in this\r\n"
    "folder; the newest one plays. Delete them all to use the standard greeting.\r\n"
)


@dataclass(frozen=True)
class Greeting:
    folder: str
    uid: int


def is_greetings_folder(mailbox: Mailbox, folder: str) -> bool:
    """True for the mailbox's greetings folder: it must never be treated as a voicemail folder."""
    return folder == f"{mailbox.folder}/{SUBFOLDER}"


def greeting_message(mailbox: Mailbox, mp3: bytes) -> bytes:
    """The small, deliberately unencrypted e-mail holding a greeting (a greeting is public)."""
    address = mailbox.email or mailbox.imap_user or "voicemail@localhost.invalid"
    msg = EmailMessage(policy=SMTP)
    msg["From"] = address
    msg["To"] = address
    msg["Subject"] = SUBJECT
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=address.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5
    msg["X-Vm2mail-Kind"] = KIND
    msg["X-Vm2mail-Mailbox"] = mailbox.id
    msg.set_content(_BODY, charset="utf-8")
    msg.add_attachment(mp3, maintype="audio", subtype="mpeg", filename="greeting.mp3")  # RFC 3003
    return msg.as_bytes()


class Greetings:
    """Finds, saves and removes a mailbox's greetings; ``current`` costs one STATUS while nothing changed."""

    def __init__(self, store: ImapStore, voicemails: Voicemails) -> None:
        self.store = store
        self.voicemails = voicemails
        # (login, folder) -> ((uidvalidity, uidnext, messages), greeting UIDs with audio, oldest first)
        self._cache: dict[tuple[str, str], tuple[tuple[int, int, int], tuple[int, ...]]] = {}

    def folder(self, mailbox: Mailbox) -> str:
        return f"{mailbox.folder}/{SUBFOLDER}"

    def _key(self, mailbox: Mailbox) -> tuple[str, str]:
        return (self.store.credentials(mailbox)[0], self.folder(mailbox))

    async def _state(self, conn: ImapConnection, folder: str) -> tuple[int, int, int] | None:
        """(UIDVALIDITY, UIDNEXT, MESSAGES) of the folder (RFC 3501 §6.3.10), None when it does not exist."""
        if conn.selected == folder:
            # Dovecot answers STATUS on the selected folder from this session's view: sync it first.
            await conn.noop()
        status = await conn.status(folder, missing_ok=True)
        return None if status is None else (status.uidvalidity, status.uidnext, status.messages)

    async def _audio_uids(self, conn: ImapConnection, pool: Pool, folder: str) -> tuple[int, ...]:
        """UIDs of the messages with audio, ascending, from their BODYSTRUCTURE (never the bodies)."""
        await self.store.select(conn, pool, folder)
        records = await conn.uid_fetch("1:*", "(UID BODYSTRUCTURE)")
        return tuple(sorted(uid for uid, record in records.items() if record.audio))

    async def _greetings(self, mailbox: Mailbox, conn: ImapConnection, pool: Pool) -> tuple[int, ...]:
        key, folder = self._key(mailbox), self.folder(mailbox)
        state = await self._state(conn, folder)
        if state is None or state[2] == 0:
            self._cache.pop(key, None)
            return ()
        cached = self._cache.get(key)
        if cached is not None and cached[0] == state:
            return cached[1]
        uids = await self._audio_uids(conn, pool, folder)
        self._cache[key] = (state, uids)
        return uids

    async def current(self, mailbox: Mailbox) -> Greeting | None:
        """The newest message with audio in the greetings folder (as any client left it), or None."""

        async def op(conn: ImapConnection, pool: Pool) -> Greeting | None:
            uids = await self._greetings(mailbox, conn, pool)
            return Greeting(self.folder(mailbox), uids[-1]) if uids else None

        return await self.store.run(mailbox, op)

    async def _to_trash(self, mailbox: Mailbox, uids: list[int]) -> None:
        if not uids:
            return
        trash, folder = await self.voicemails.trash_folder(mailbox), self.folder(mailbox)

        async def op(conn: ImapConnection, pool: Pool) -> None:
            await self.store.select(conn, pool, folder)
            # RFC 6851 UID MOVE: recoverable from Trash like a deleted voicemail.
            await conn.uid_move(uid_set(uids), trash)

        await self.store.run(mailbox, op)

    async def save(self, mailbox: Mailbox, audio: Path) -> Greeting:
        """Store ``audio`` (any format ffmpeg reads) as the new greeting; older ones go to Trash."""
        with tempfile.TemporaryDirectory(prefix="vm2mail-greeting-") as tmp:
            encoded = await transcode_to_mp3(audio, Path(tmp) / "greeting.mp3")
            mp3 = await asyncio.to_thread(encoded.path.read_bytes)
        message = await asyncio.to_thread(greeting_message, mailbox, mp3)
        folder = self.folder(mailbox)
        uid = await self.voicemails.append(mailbox, folder, message, flags=(SEEN,))

        async def older(conn: ImapConnection, pool: Pool) -> tuple[int, ...]:
            return await self._greetings(mailbox, conn, pool)

        await self._to_trash(mailbox, [u for u in await self.store.run(mailbox, older) if u != uid])
        log.info("mailbox %s: saved a new greeting (UID %d, %.1f s)", mailbox.id, uid, encoded.duration)
        return Greeting(folder, uid)

    async def remove(self, mailbox: Mailbox) -> int:
        """Move every greeting to Trash (callers then hear the standard greeting); how many there were."""

        async def op(conn: ImapConnection, pool: Pool) -> tuple[int, ...]:
            return await self._greetings(mailbox, conn, pool)

        uids = list(await self.store.run(mailbox, op))
        await self._to_trash(mailbox, uids)
        log.info("mailbox %s: removed %d greeting(s)", mailbox.id, len(uids))
        return len(uids)
