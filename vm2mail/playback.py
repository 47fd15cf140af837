"""Decrypting a voicemail's audio and converting it to MP3 for playback, with a small LRU cache.

Layer: core. Shared by the phone menu (``<Play>`` of a signed media URL, vm2mail.telephony.media) and
the web inbox (audio streaming); the URLs and HTTP routes stay in those edges. May import: services,
config, errors and the base modules.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from email.message import Message
from pathlib import Path

from vm2mail.audio.transcode import transcode_to_mp3
from vm2mail.config.model import Config, Mailbox
from vm2mail.crypto.pgp import encryptor
from vm2mail.errors import AudioError, CryptoError, MailStoreError
from vm2mail.mailstore.voicemails import Voicemails

log = logging.getLogger(__name__)

# Header fields of the decrypted message the menu may announce (a private mailbox keeps them only inside).
DETAIL_FIELDS = ("X-Vm2mail-Caller", "X-Vm2mail-Caller-Name", "X-Vm2mail-Duration", "X-Vm2mail-Called")
CACHE_ENTRIES = 32
CACHE_BYTES = 32 * 1024 * 1024
_AUDIO_NAMES = (".mp3", ".wav", ".gsm", ".ogg", ".opus", ".m4a", ".amr", ".flac", ".au")
_MP3_TYPES = ("audio/mpeg", "audio/mp3", "audio/mpeg3", "audio/x-mpeg", "audio/x-mp3")

Key = tuple[str, str, int, int]  # (login, folder, uidvalidity, uid)
Loaded = tuple[bytes | None, dict[str, str]]  # (MP3 or None, caller details)


def _audio_part(msg: Message) -> Message | None:
    """The voicemail's audio: the first audio/* part (MP3 preferred), else an attachment named like audio."""
    candidates: list[Message] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        name = (part.get_filename() or "").lower()
        if ctype.startswith("audio/") or name.endswith(_AUDIO_NAMES):
            candidates.append(part)
    candidates.sort(key=lambda p: p.get_content_type() not in _MP3_TYPES)
    return candidates[0] if candidates else None


def _open_message(raw: bytes, home: Path) -> tuple[bytes | None, bool, dict[str, str]]:
    """(audio bytes, already MP3, caller details) from a message, decrypting RFC 3156 PGP/MIME first.

    The details are the (protected) header fields of the decrypted message. Blocking (gpg)."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    if msg.get_content_type() == "multipart/encrypted":
        parts = msg.get_payload()
        if not isinstance(parts, list) or len(parts) != 2 or not isinstance(parts[1], Message):
            raise CryptoError("malformed PGP/MIME message", temporary=False)
        armored = parts[1].get_payload(decode=True)
        if not isinstance(armored, bytes):
            raise CryptoError("malformed PGP/MIME payload", temporary=False)
        msg = email.message_from_bytes(encryptor(home).decrypt(armored), policy=email.policy.default)
    details = {name: str(msg[name]) for name in DETAIL_FIELDS if msg[name] is not None}
    part = _audio_part(msg)
    if part is None:
        return None, False, details
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes) or not data:
        return None, False, details
    return data, part.get_content_type() in _MP3_TYPES, details


async def to_mp3(data: bytes, name: str = "audio") -> bytes:
    """Transcode any audio ffmpeg reads (WAV, GSM, ...) to the gateway's voice MP3 (audio.transcode)."""
    with tempfile.TemporaryDirectory(prefix="vm2mail-media-") as tmp:
        src, dst = Path(tmp) / f"{name}.in", Path(tmp) / f"{name}.mp3"
        await asyncio.to_thread(src.write_bytes, data)
        encoded = await transcode_to_mp3(src, dst)
        return await asyncio.to_thread(encoded.path.read_bytes)


class Playback:
    """Finds, decrypts and converts a message's audio for the phone and the web, with a small LRU cache.

    A cache entry holds a message's MP3 together with its caller details, so both are evicted together."""

    def __init__(self, config: Callable[[], Config], voicemails: Voicemails) -> None:
        self.config = config
        self.voicemails = voicemails
        self._cache: OrderedDict[Key, tuple[bytes, dict[str, str]]] = OrderedDict()
        self._pending: dict[Key, asyncio.Future[Loaded]] = {}

    async def details(self, mailbox: Mailbox, folder: str, uid: int) -> dict[str, str]:
        """The decrypted message's caller fields (for a private mailbox's envelope); {} when unknown."""
        key = await self._key(mailbox, folder, uid)
        if key is None:
            return {}
        return (await self._loaded(mailbox, folder, uid, key))[1]

    async def audio(self, mailbox: Mailbox, folder: str, uid: int, uidvalidity: int = 0) -> bytes | None:
        """The MP3 to play, or None when the message is gone, cannot be decrypted here or has no audio
        (or ``uidvalidity`` is given and the folder's differs: the UID now names another message)."""
        key = await self._key(mailbox, folder, uid, uidvalidity)
        if key is None:
            return None
        return (await self._loaded(mailbox, folder, uid, key))[0]

    async def _key(self, mailbox: Mailbox, folder: str, uid: int, uidvalidity: int = 0) -> Key | None:
        """The cache key of the message the UID names now, or None when it is gone (or ``uidvalidity`` is
        given and the folder's differs)."""
        try:
            current = await self.voicemails.locate(mailbox, uid, folder)
        except MailStoreError as exc:
            log.warning("media: mailbox %s UID %d: IMAP failed: %s", mailbox.id, uid, exc)
            return None
        if current is None or (uidvalidity and uidvalidity != current):
            log.info("media: mailbox %s UID %d in %r is gone", mailbox.id, uid, folder)
            return None
        return (self.voicemails.store.credentials(mailbox)[0], folder, current, uid)

    async def _loaded(self, mailbox: Mailbox, folder: str, uid: int, key: Key) -> Loaded:
        """(MP3 or None, caller details) of ``key``: from the cache, else loaded once for all waiters."""
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        pending = self._pending.get(key)
        if pending is not None:  # the menu's check and Twilio's GET arrive together: do the work once
            return await asyncio.shield(pending)
        future: asyncio.Future[Loaded] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            result = await self._load(mailbox, folder, uid)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs "never retrieved"
            raise
        else:
            future.set_result(result)
        finally:
            self._pending.pop(key, None)
        mp3, details = result
        if mp3 is not None:
            self._remember(key, mp3, details)
        return result

    def _remember(self, key: Key, mp3: bytes, details: dict[str, str]) -> None:
        self._cache[key] = (mp3, details)
        while (
            len(self._cache) > CACHE_ENTRIES
            or sum(len(entry[0]) for entry in self._cache.values()) > CACHE_BYTES
        ):
            self._cache.popitem(last=False)

    async def _load(self, mailbox: Mailbox, folder: str, uid: int) -> Loaded:
        where = f"mailbox {mailbox.id} UID {uid} in {folder!r}"
        try:
            raw = await self.voicemails.fetch(mailbox, uid, folder)
        except MailStoreError as exc:
            log.warning("media: %s: IMAP failed: %s", where, exc)
            return None, {}
        if raw is None:
            log.info("media: %s is gone", where)
            return None, {}
        details: dict[str, str] = {}
        try:
            data, is_mp3, details = await asyncio.to_thread(_open_message, raw, self.config().gpg.home)
            if data is None:
                log.info("media: %s has no audio", where)
                return None, details
            return (data if is_mp3 else await to_mp3(data, f"uid{uid}")), details
        except CryptoError as exc:
            # Encrypted without the playback key: the menu says it opens only in the user's e-mail.
            log.info("media: %s cannot be decrypted here: %s", where, exc)
        except AudioError as exc:
            log.warning("media: %s audio unusable: %s", where, exc)
        except (ValueError, LookupError, TypeError) as exc:  # a malformed MIME structure
            log.warning("media: %s unreadable: %s", where, type(exc).__name__)
        return None, details
