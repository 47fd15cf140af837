"""Mailbox options (key 0): record, hear and remove the greeting, divert to voicemail, change the PIN."""

from __future__ import annotations

import asyncio
import hmac
import logging
import tempfile
import time
from pathlib import Path

from vm2mail.errors import Vm2mailError
from vm2mail.menu.call import Call
from vm2mail.pinhash import PIN
from vm2mail.routing import control
from vm2mail.telephony import media, twiml
from vm2mail.telephony.menustate import MenuState, pin_mac
from vm2mail.twilioapi.fetch import fetch_recording

log = logging.getLogger(__name__)

GREETING_MAX_SECONDS = 120
# At the <Record action> the recording may not be fetchable yet (FIELD-NOTES: Twilio): retry briefly.
FETCH_ATTEMPTS = 3
FETCH_PAUSE_SECONDS = 0.5


def options_page(call: Call, state: MenuState, lead: list[twiml.Spoken] | None = None) -> str:
    items: list[twiml.Spoken] = [*(lead or []), call.prompt("menu-options.j2")]
    return call.page(state.next(step="options", quiet=0, pending=""), items)


def record(call: Call, state: MenuState, *, away: bool = False) -> str:
    """Option 1 (6: the away greeting): prompt, beep, ``<Record>``; the action (step "greetrec"/"awayrec")
    stores it."""
    prompt = "menu-away-record.j2" if away else "menu-greeting-record.j2"
    return twiml.record_greeting(
        items=[call.prompt(prompt)],
        action=call.url(state.next(step="awayrec" if away else "greetrec", call=call.call_sid)),
        max_seconds=GREETING_MAX_SECONDS,
        fallback=call.url(state.next(step="options", call=call.call_sid)),
    )


async def recorded(call: Call, state: MenuState, *, away: bool = False) -> str:
    """The ``<Record action>``: fetch the WAV from Twilio, store it as the greeting, delete it at Twilio."""
    mailbox = call.mailbox
    assert mailbox is not None
    greetings = call.deps.away_greetings if away else call.deps.greetings
    if greetings is None:
        return options_page(call, state, [call.prompt("menu-greeting-failed.j2")])
    url, sid = call.form.get("RecordingUrl", ""), call.form.get("RecordingSid", "")
    if not url or not sid:
        return options_page(call, state, [call.prompt("menu-greeting-failed.j2")])
    try:
        with tempfile.TemporaryDirectory(prefix="vm2mail-greeting-") as tmp:
            path = Path(tmp) / "greeting.wav"
            for attempt in range(1, FETCH_ATTEMPTS + 1):
                try:
                    await fetch_recording(call.deps.http, call.config.twilio, sid, path)
                    break
                except Vm2mailError:
                    if attempt == FETCH_ATTEMPTS:
                        raise
                    await asyncio.sleep(FETCH_PAUSE_SECONDS)
            greeting = await greetings.save(mailbox, path)
    except Vm2mailError as exc:
        log.error(
            "call %s: greeting recording %s for mailbox %s not saved: %s", call.call_sid, sid, mailbox.id, exc
        )
        return options_page(call, state, [call.prompt("menu-greeting-failed.j2")])
    log.info("call %s: greeting for mailbox %s saved as UID %d", call.call_sid, mailbox.id, greeting.uid)
    if call.config.twilio.delete_recordings and call.deps.delete_recording is not None:
        try:
            await call.deps.delete_recording(sid)
        except Vm2mailError as exc:
            log.warning("call %s: greeting recording %s not deleted at Twilio: %s", call.call_sid, sid, exc)
    return options_page(call, state, [call.prompt("menu-greeting-saved.j2")])


async def hear(call: Call, state: MenuState) -> str:
    """Option 2: play the recorded greeting (any key interrupts)."""
    mailbox = call.mailbox
    assert mailbox is not None
    greeting = await call.deps.greetings.current(mailbox)
    if greeting is None:
        return options_page(call, state, [call.prompt("menu-greeting-none.j2")])
    play = twiml.Play(media.play_url(call.deps.config(), mailbox, greeting.folder, greeting.uid))
    return options_page(call, state, [call.prompt("menu-greeting-current.j2"), play])


async def remove(call: Call, state: MenuState, *, away: bool = False) -> str:
    """Option 3 (7: the away greeting): remove the recorded greeting; callers hear the spoken one again."""
    mailbox = call.mailbox
    assert mailbox is not None
    greetings = call.deps.away_greetings if away else call.deps.greetings
    if greetings is None:
        return options_page(call, state, [call.prompt("menu-invalid.j2")])
    removed = await greetings.remove(mailbox)
    name = "menu-greeting-removed.j2" if removed else "menu-greeting-none.j2"
    log.info("call %s: %d greeting(s) of mailbox %s removed", call.call_sid, removed, mailbox.id)
    return options_page(call, state, [call.prompt(name)])


async def divert(call: Call, state: MenuState) -> str:
    """Option 4: send the mailbox's calls straight to voicemail, or ring ``forward_to`` again (a toggle)."""
    mailbox = call.mailbox
    assert mailbox is not None
    switches = call.deps.switches
    if switches is None:
        return options_page(call, state, [call.prompt("menu-invalid.j2")])
    current = await switches.mode(mailbox)
    now = time.time()
    switch = await control.divert(switches, mailbox, on=not current.active(now), by=f"phone {call.call_sid}")
    name = "menu-divert-on.j2" if switch.active(now) else "menu-divert-off.j2"
    return options_page(call, state, [call.prompt(name)])


def new_pin(call: Call, state: MenuState) -> str:
    """Option 5: first entry of the new PIN."""
    return call.page(state.next(step="newpin1", quiet=0), [call.prompt("menu-new-pin.j2")], collect=True)


def new_pin_entered(call: Call, state: MenuState) -> str:
    """Keep only a keyed MAC of the first entry in the state: the URL never carries the PIN."""
    if not PIN.match(call.digits):
        return options_page(call, state, [call.prompt("menu-pin-mismatch.j2")])
    mac = pin_mac(call.config.server.secret_key, call.call_sid, call.digits)
    return call.page(
        state.next(step="newpin2", pending=mac), [call.prompt("menu-new-pin-again.j2")], collect=True
    )


async def new_pin_confirmed(call: Call, state: MenuState) -> str:
    mailbox = call.mailbox
    assert mailbox is not None
    mac = pin_mac(call.config.server.secret_key, call.call_sid, call.digits)
    same = bool(state.pending) and hmac.compare_digest(mac, state.pending)
    if not same or not PIN.match(call.digits):
        return options_page(call, state, [call.prompt("menu-pin-mismatch.j2")])
    await call.deps.login_service().change_pin(mailbox, call.digits)
    return options_page(call, state, [call.prompt("menu-pin-changed.j2")])
