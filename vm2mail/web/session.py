"""Stateless web sessions: an HMAC-signed, expiring cookie valid on every instance, and its CSRF token.

The only server-side state is a per-mailbox "session generation" counter in IMAP METADATA (RFC 5464):
"log out everywhere" increments it, and every cookie signed with an older generation stops working on
every gateway instance at once. Nothing secret is stored there (FIELD-NOTES: anyone with access to the
folder can read private entries), only the counter.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from vm2mail import signing
from vm2mail.config.model import Config, Mailbox
from vm2mail.errors import SignatureError
from vm2mail.mailstore.metadata import Metadata
from vm2mail.web.auth import read_once_more

COOKIE = "vm2mail_inbox"
GENERATION_ENTRY = "web-session-generation"
# Domain separation (as vm2mail.telephony.media and vm2mail.telephony.menustate do): these keys sign web
# sessions and CSRF tokens and nothing else, though all derive from server.secret_key.
_SESSION_LABEL = b"vm2mail/web-session/v1"
_CSRF_LABEL = b"vm2mail/web-csrf/v1"
# How long a generation read from METADATA is trusted before it is read again: "log out everywhere"
# reaches every instance within this time, and a list request costs no METADATA round trip.
GENERATION_CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class Session:
    """What a valid cookie says: whose mailbox, which generation, until when, and its CSRF nonce."""

    mailbox_id: str
    generation: int
    expires: int
    nonce: str


def issue(secret: str, mailbox_id: str, generation: int, lifetime_seconds: int) -> tuple[str, Session]:
    """A new cookie value and the session it carries."""
    session = Session(mailbox_id, generation, int(time.time()) + lifetime_seconds, secrets.token_urlsafe(16))
    body = [session.mailbox_id, session.generation, session.expires, session.nonce]
    return signing.seal(secret, _SESSION_LABEL, body), session


def read(secret: str, cookie: str) -> Session | None:
    """The session of a well-signed, unexpired cookie; None for a forged, altered or expired one."""
    try:
        mailbox_id, generation, expires, nonce = signing.unseal(secret, _SESSION_LABEL, cookie)
    except (SignatureError, ValueError, TypeError):  # forged or altered; or signed but not four values
        return None
    if not (isinstance(mailbox_id, str) and isinstance(nonce, str)):
        return None
    if not (isinstance(generation, int) and isinstance(expires, int)):
        return None
    if expires < time.time():
        return None
    return Session(mailbox_id, generation, expires, nonce)


def csrf_token(secret: str, session: Session) -> str:
    """The token every state-changing request must echo in ``X-CSRF-Token`` (bound to this session)."""
    return signing.b64(signing.mac(secret, _CSRF_LABEL, session.nonce.encode("ascii")))


def csrf_ok(secret: str, session: Session, token: str | None) -> bool:
    return token is not None and hmac.compare_digest(token.encode(), csrf_token(secret, session).encode())


class Generations:
    """Each mailbox's session generation, read from METADATA and cached for a moment."""

    def __init__(self, config: Callable[[], Config], metadata: Metadata) -> None:
        self.config = config
        self.metadata = metadata
        self._cache: dict[str, tuple[float, int]] = {}

    async def current(self, mailbox: Mailbox) -> int:
        cached = self._cache.get(mailbox.id)
        if cached is not None and time.monotonic() - cached[0] < GENERATION_CACHE_SECONDS:
            return cached[1]
        what = f"session generation of mailbox {mailbox.id}"
        raw = await read_once_more(lambda: self.metadata.get(mailbox, GENERATION_ENTRY), what)
        try:
            value = int(raw or 0)
        except ValueError:
            value = 0
        self._cache[mailbox.id] = (time.monotonic(), value)
        return value

    async def bump(self, mailbox: Mailbox) -> int:
        """Invalidate every session of ``mailbox`` on every instance; the new generation."""
        self._cache.pop(mailbox.id, None)
        value = await self.current(mailbox) + 1
        await self.metadata.set(mailbox, GENERATION_ENTRY, str(value))
        self._cache[mailbox.id] = (time.monotonic(), value)
        return value
