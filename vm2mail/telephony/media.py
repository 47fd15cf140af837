"""Signed, expiring ``<Play>`` URLs bound to one message, and the route that serves its audio as MP3.

The audio itself (finding, decrypting, converting, caching) is vm2mail.playback's, shared with the web
inbox; this module is the telephony side: the URL Twilio fetches and the HTTP answer to that fetch.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from vm2mail import signing
from vm2mail.config.model import Config, Mailbox
from vm2mail.errors import SignatureError
from vm2mail.playback import Playback

log = logging.getLogger(__name__)

MEDIA_PATH = "/media/{token}"
SUFFIX = ".mp3"
# Domain separation (as in vm2mail.telephony.menustate): these keys sign and seal media URLs and nothing else.
_LABEL = b"vm2mail/media-url/v2"
_SEAL_LABEL = b"vm2mail/media-url/v2/seal"


def sign(secret: str, mailbox_id: str, folder: str, uid: int, expires: int, uidvalidity: int = 0) -> str:
    """An opaque token (signing.seal_secret) of [mailbox id, folder, uid, expiry, UIDVALIDITY].
    UIDVALIDITY binds it to the folder's current UIDs (RFC 3501 §2.3.1.1): a recreated folder reuses
    UIDs for other messages. 0 leaves it unbound (greetings)."""
    return signing.seal_secret(secret, _LABEL, _SEAL_LABEL, [mailbox_id, folder, uid, expires, uidvalidity])


def verify_bound(secret: str, token: str, now: float | None = None) -> tuple[str, str, int, int] | None:
    """(mailbox id, folder, uid, UIDVALIDITY or 0) from a valid, unexpired token; None for anything else."""
    try:
        mailbox_id, folder, uid, expires, uidvalidity = signing.open_secret(
            secret, _LABEL, _SEAL_LABEL, token
        )
    except (SignatureError, ValueError, TypeError):
        return None
    if not (isinstance(mailbox_id, str) and isinstance(folder, str) and isinstance(uid, int)):
        return None
    if not isinstance(uidvalidity, int) or not isinstance(expires, int):
        return None
    if expires < (time.time() if now is None else now):
        return None
    return mailbox_id, folder, uid, uidvalidity


def verify(secret: str, token: str, now: float | None = None) -> tuple[str, str, int] | None:
    """(mailbox id, folder, uid) from a valid, unexpired token; None for anything else."""
    found = verify_bound(secret, token, now)
    return found[:3] if found is not None else None


def play_url(cfg: Config, mailbox: Mailbox, folder: str, uid: int, uidvalidity: int = 0) -> str:
    """Absolute URL Twilio fetches for ``<Play>``; it expires after ``menu.media_ttl_seconds``."""
    expires = int(time.time()) + cfg.menu.media_ttl_seconds
    token = sign(cfg.server.secret_key, mailbox.id, folder, uid, expires, uidvalidity)
    return f"{cfg.server.public_url.rstrip('/')}/media/{token}{SUFFIX}"


def add_media_routes(app: web.Application, playback: Playback) -> None:
    """``GET /media/<token>.mp3``: the token is the only credential (Twilio sends none on <Play> fetches)."""

    async def media(request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"].removesuffix(SUFFIX)
        cfg = playback.config()
        found = verify_bound(cfg.server.secret_key, token)
        mailbox = cfg.mailboxes.get(found[0]) if found is not None else None
        if found is None or mailbox is None:
            log.info("media: refused a bad or expired token")
            raise web.HTTPNotFound(text="Not Found")
        _, folder, uid, uidvalidity = found
        mp3 = await playback.audio(mailbox, folder, uid, uidvalidity)
        if mp3 is None:
            raise web.HTTPNotFound(text="Not Found")
        return web.Response(body=mp3, content_type="audio/mpeg", headers={"Cache-Control": "no-store"})

    app.router.add_get(MEDIA_PATH, media)
