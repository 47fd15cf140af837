"""Menu state signed into every ``<Gather action>`` URL, so any gateway instance can serve the next step."""

from __future__ import annotations

import binascii
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from vm2mail import signing
from vm2mail.errors import SignatureError

# Domain separation: the menu key is derived from server.secret_key with its own label, so a media
# token (signed with another label) can never pass as menu state or the other way round.
_LABEL = b"vm2mail/menu-state/v1"
_PIN_LABEL = b"vm2mail/menu-pending-pin/v1"
# State older than this is refused even before login (a captured URL is useless after a while).
MAX_AGE_SECONDS = 2 * 3600
HEARD_KEEP = 30  # UIDs heard in this call, so "previous" still finds messages that are no longer new

# Short JSON keys keep the URLs small (Twilio URLs may be up to 4,000 characters).
_KEYS = {
    "call": "c",
    "step": "s",
    "mailbox": "m",
    "by_owner": "o",
    "login_until": "l",
    "uid": "u",
    "date": "d",
    "mode": "n",
    "trash_uid": "t",
    "heard": "h",
    "pins": "p",
    "quiet": "q",
    "pending": "x",
    "issued": "i",
}
_NAMES = {short: name for name, short in _KEYS.items()}


@dataclass(frozen=True, kw_only=True)
class MenuState:
    """Where one call is in the menu; nothing here is secret, but all of it is authenticated."""

    call: str  # CallSid: state from one call is refused in another
    step: str  # what the pending <Gather> collects: "box", "pin", "main", "msg", "options", ...
    mailbox: str = ""
    by_owner: bool = False  # the mailbox came from the caller's number, not from digits
    login_until: int = 0  # epoch seconds; 0: not logged in
    uid: int = 0  # the current message (UID in the mailbox folder); 0: none yet
    date: int = 0  # its Date (epoch seconds): the order key survives a delete
    mode: str = ""  # "new" | "old": which group 4/6 walk through
    trash_uid: int = 0  # the current message's UID in Trash after 7, so 7 again restores it
    heard: tuple[int, ...] = field(default_factory=tuple)
    pins: int = 0  # wrong PINs in this call
    quiet: int = 0  # timeouts in a row
    pending: str = ""  # keyed MAC of the first entry of a new PIN (never the PIN itself)
    issued: int = 0

    @property
    def logged_in(self) -> bool:
        return self.login_until > time.time()

    def next(self, **changes: Any) -> MenuState:
        return replace(self, **changes)


def encode(secret: str, state: MenuState) -> str:
    """``payload.mac``: base64url JSON and its HMAC-SHA256 (RFC 2104) under the menu's derived key."""
    values = asdict(replace(state, issued=int(time.time())))
    compact = {_KEYS[k]: v for k, v in values.items() if v not in ("", 0, False, (), [])}
    compact["c"] = state.call
    compact["s"] = state.step
    return signing.seal(secret, _LABEL, compact)


def decode(secret: str, token: str, *, call_sid: str) -> MenuState:
    """The state in ``token``; SignatureError when it was altered, is too old or belongs to another call."""
    raw = signing.unseal(secret, _LABEL, token)  # SignatureError when altered or malformed
    try:
        values = {_NAMES[k]: v for k, v in raw.items()}
        values["heard"] = tuple(int(u) for u in values.get("heard", ()))
        state = MenuState(**values)
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise SignatureError(f"malformed menu state: {type(exc).__name__}") from exc
    if state.call != call_sid:
        raise SignatureError("menu state belongs to another call")
    if not 0 <= time.time() - state.issued <= MAX_AGE_SECONDS:
        raise SignatureError("menu state expired")
    return state


def pin_mac(secret: str, call_sid: str, pin: str) -> str:
    """A keyed MAC of a PIN entry for this call: comparable later, useless without the gateway's key."""
    return signing.b64(signing.mac(secret, _PIN_LABEL, f"{call_sid}:{pin}".encode()))
