"""The signed menu state: round trip, tampering, another call, age, and separation from media tokens."""

from __future__ import annotations

import time

import pytest

from vm2mail.errors import SignatureError
from vm2mail.telephony import media
from vm2mail.telephony import menustate as menu_state
from vm2mail.telephony.menustate import MenuState, decode, encode, pin_mac

SECRET = "s3cret-key-for-tests-0123456789"
CALL = "CA" + "ab" * 16


def test_round_trip_keeps_every_field() -> None:
    state = MenuState(
        call=CALL,
        step="msg",
        mailbox="201",
        by_owner=True,
        login_until=int(time.time()) + 60,
        uid=42,
        date=1_790_000_000,
        mode="new",
        trash_uid=7,
        heard=(40, 41, 42),
        pins=1,
        quiet=1,
    )
    back = decode(SECRET, encode(SECRET, state), call_sid=CALL)
    assert back.next(issued=0) == state.next(issued=0)
    assert back.logged_in


def test_altered_state_is_refused() -> None:
    token = encode(
        SECRET, MenuState(call=CALL, step="main", mailbox="201", login_until=int(time.time()) + 60)
    )
    payload, mac = token.split(".")
    for forged in (
        payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + mac,
        payload + "." + mac[::-1],
        payload,
        "",
        "x.y",
    ):
        with pytest.raises(SignatureError):
            decode(SECRET, forged, call_sid=CALL)
    with pytest.raises(SignatureError):
        decode("another-key-0123456789", token, call_sid=CALL)


def test_state_is_bound_to_its_call_and_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    token = encode(SECRET, MenuState(call=CALL, step="pin", mailbox="201"))
    with pytest.raises(SignatureError):
        decode(SECRET, token, call_sid="CA" + "cd" * 16)
    later = time.time() + menu_state.MAX_AGE_SECONDS + 5
    monkeypatch.setattr(menu_state.time, "time", lambda: later)
    with pytest.raises(SignatureError):
        decode(SECRET, token, call_sid=CALL)


def test_media_tokens_are_not_menu_state() -> None:
    token = media.sign(SECRET, "201", "Voicemail", 5, int(time.time()) + 300)
    with pytest.raises(SignatureError):
        decode(SECRET, token, call_sid=CALL)


def test_pending_pin_mac_is_keyed_and_per_call() -> None:
    mac = pin_mac(SECRET, CALL, "4711")
    assert "4711" not in mac
    assert mac == pin_mac(SECRET, CALL, "4711")
    assert mac != pin_mac(SECRET, "CA" + "cd" * 16, "4711")
    assert mac != pin_mac("another-key-0123456789", CALL, "4711")
