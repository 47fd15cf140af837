"""The menu's state machine: entry, login, the main and message keys, options; one POST per step."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping

from vm2mail import metrics
from vm2mail.config.model import Config, Mailbox
from vm2mail.errors import Vm2mailError
from vm2mail.jobs.jobs import caller_number
from vm2mail.logins import Result
from vm2mail.menu import messages, options
from vm2mail.menu.call import Call, MenuDeps
from vm2mail.telephony import prompts, twiml
from vm2mail.telephony.menustate import MenuState, decode

log = logging.getLogger(__name__)

UNKNOWN_MAILBOX = "?"  # in the state after digits that name no mailbox; no mailbox id has this form

MAX_TIMEOUTS = 2  # a timeout re-prompts once; the second in a row says goodbye
LOGIN_STEPS = frozenset({"box", "pin", "greet"})


def owner_mailbox(config: Config, called: str, caller: str | None) -> str | None:
    """The mailbox whose owner calls its own number from ``forward_to`` (or a menu number), or None."""
    if caller is None:
        return None
    owned = config.mailbox_for_owner(caller)
    if owned is None or owned.pin_hash is None:
        return None
    if called in config.menu.numbers or called in owned.numbers:
        return owned.id
    return None


class Menu:
    """Answers ``POST /twilio/menu``; every step re-reads the IMAP folder (it is the only truth)."""

    def __init__(self, deps: MenuDeps) -> None:
        self.deps = deps

    async def step(self, form: Mapping[str, str], token: str | None, call_sid: str) -> str:
        config = self.deps.config()
        if token is None:
            state = self._entry(config, form, call_sid)
            if state is None:
                metrics.MENU_STEPS.labels(step="refused").inc()
                log.warning("call %s: menu entry from a number that reaches no menu", call_sid)
                return twiml.say_and_hangup(prompts.service_prompt(config, prompts.NOT_IN_SERVICE))
            call = Call(self.deps, config, form, call_sid, state, "")
            metrics.MENU_STEPS.labels(step="entry").inc()
            return self._ask_login(call, state)
        state = decode(config.server.secret_key, token, call_sid=call_sid)
        # Digits arrive in the signed POST body; they are never logged (they may be a PIN).
        call = Call(self.deps, config, form, call_sid, state, form.get("Digits", "").strip())
        metrics.MENU_STEPS.labels(step=state.step).inc()
        if state.step in LOGIN_STEPS:
            return await self._login(call, state)
        if not state.logged_in or call.mailbox is None:
            log.info("call %s: menu session expired", call_sid)
            return call.bye(call.prompt("menu-expired.j2"), goodbye=False)
        return await self._logged_in(call, state)

    # -- entry and login ---------------------------------------------------------------------------

    def _entry(self, config: Config, form: Mapping[str, str], call_sid: str) -> MenuState | None:
        called = form.get("To", "")
        owned = owner_mailbox(config, called, caller_number(form.get("From")))
        if owned is not None:
            return MenuState(call=call_sid, step="pin", mailbox=owned, by_owner=True)
        if called in config.menu.numbers:
            return MenuState(call=call_sid, step="box")
        return None

    def _ask_login(self, call: Call, state: MenuState, lead: list[twiml.Spoken] | None = None) -> str:
        items = [*(lead or [])]
        if state.by_owner:
            items.append(call.prompt("menu-pin.j2"))
            return call.page(state.next(step="pin"), items, collect=True)
        items.append(call.prompt("menu-mailbox.j2"))
        return call.page(state.next(step="box", mailbox=""), items, collect=True)

    async def _login(self, call: Call, state: MenuState) -> str:
        config = call.config
        if state.step == "greet":
            return self._greet_key(call, state)
        if not call.digits:
            if state.quiet + 1 >= MAX_TIMEOUTS:
                return call.bye()
            return self._ask_login(call, state.next(quiet=state.quiet + 1))
        if state.step == "box":
            # Known or not, ask for the PIN: the caller learns nothing about which mailboxes exist.
            # Only a configured mailbox id goes into the state (a URL Twilio and proxies log): digits
            # that name none, perhaps a PIN typed too early, are never written anywhere.
            known = call.digits if call.digits in config.mailboxes else UNKNOWN_MAILBOX
            pin_state = state.next(step="pin", mailbox=known, quiet=0)
            return call.page(pin_state, [call.prompt("menu-pin.j2")], collect=True)
        mailbox = config.mailboxes.get(state.mailbox)
        if mailbox is not None and mailbox.is_group:
            mailbox = None  # group mailboxes have no folder of their own to log in to
        # Read the folder while scrypt runs: the counts after a good PIN then need one STATUS only.
        prefetch = asyncio.create_task(self._prefetch(mailbox))
        try:
            result = await self.deps.login_service().check(mailbox, call.digits, call_sid=call.call_sid)
        finally:
            await prefetch
        if result is Result.LOCKED:
            return call.bye(call.prompt("menu-locked.j2"), goodbye=False)
        if result is Result.WRONG:
            pins = state.pins + 1
            failed = call.prompt("menu-login-failed.j2")
            if pins >= config.menu.max_pin_attempts:
                log.warning("call %s: %d wrong PINs, ending the call", call.call_sid, pins)
                return call.bye(failed)
            return self._ask_login(call, state.next(pins=pins, quiet=0), [failed])
        assert mailbox is not None
        until = int(time.time()) + config.menu.session_minutes * 60
        logged = state.next(step="main", login_until=until, pins=0, quiet=0)
        return await messages.main_menu(Call(call.deps, config, call.form, call.call_sid, logged, ""), logged)

    async def _prefetch(self, mailbox: Mailbox | None) -> None:
        if mailbox is None:
            return
        with contextlib.suppress(Vm2mailError):  # the step after login reads it again and reports it
            await self.deps.voicemails.listing(mailbox)

    def _greet_key(self, call: Call, state: MenuState) -> str:
        """A key pressed during the greeting: ``*`` opens the menu; any other key records at once."""
        mailbox = call.mailbox
        if call.digits == "*" and mailbox is not None:
            log.info("call %s: * during the greeting of mailbox %s: menu", call.call_sid, mailbox.id)
            return self._ask_login(call, state.next(step="pin", by_owner=True))
        if mailbox is None:
            return twiml.hangup()
        caller = caller_number(call.form.get("From"))
        context = twiml.CallContext(
            mailbox_id=mailbox.id,
            called=call.form.get("To", ""),
            caller=caller,
            caller_name=call.form.get("CallerName", "").strip() or None,
        )
        return twiml.voicemail(
            public_url=call.config.server.public_url,
            mailbox=mailbox,
            context=context,
            greeting=None,
            goodbye=prompts.mailbox_prompt(call.config, mailbox, prompts.GOODBYE),
        )

    # -- logged in ---------------------------------------------------------------------------------

    async def _logged_in(self, call: Call, state: MenuState) -> str:
        step, key = state.step, call.digits
        if step in ("greetrec", "awayrec"):
            return await options.recorded(call, state, away=step == "awayrec")
        if step == "dialed":
            return await messages.main_menu(call, state)
        if not key:
            if state.quiet + 1 >= MAX_TIMEOUTS:
                return call.bye()
            return await self._reprompt(call, state.next(quiet=state.quiet + 1))
        if step == "newpin1":
            return options.new_pin_entered(call, state)
        if step == "newpin2":
            return await options.new_pin_confirmed(call, state)
        if step == "options":
            return await self._option(call, state, key)
        if step == "env" and key == "2":
            return await messages.callback(call, state)
        return await self._message_key(call, state, key)

    async def _reprompt(self, call: Call, state: MenuState) -> str:
        if state.step == "options":
            return options.options_page(call, state)
        if state.step in ("msg", "env"):
            return call.page(state.next(step="msg"), [call.prompt("menu-after-message.j2")])
        if state.step in ("newpin1", "newpin2"):
            return options.options_page(call, state)
        return call.page(state.next(step="main"), [call.prompt("menu-main.j2")])

    async def _message_key(self, call: Call, state: MenuState, key: str) -> str:
        state = state.next(quiet=0)
        if key == "1":
            return await messages.first(call, state.next(uid=0, date=0, mode="", trash_uid=0))
        if key == "6":
            return await messages.step(call, state, forward=True)
        if key == "4":
            return await messages.step(call, state, forward=False)
        if key == "5":
            return await messages.repeat(call, state)
        if key == "7":
            return await messages.delete(call, state)
        if key == "9":
            return await messages.save(call, state)
        if key == "3":
            return await messages.envelope(call, state)
        if key == "0":
            return options.options_page(call, state)
        if key == "*":
            back = "msg" if state.uid else "main"
            return call.page(state.next(step=back), [call.prompt("menu-help.j2")])
        if key == "#":
            return call.bye()
        invalid = call.prompt("menu-invalid.j2")
        if state.uid:
            return messages.message_page(call, state, [invalid])
        return call.page(state.next(step="main"), [invalid, call.prompt("menu-main.j2")])

    async def _option(self, call: Call, state: MenuState, key: str) -> str:
        if key == "1":
            return options.record(call, state)
        if key == "2":
            return await options.hear(call, state)
        if key == "3":
            return await options.remove(call, state)
        if key == "4":
            return await options.divert(call, state)
        if key in ("6", "7"):
            return (
                options.record(call, state, away=True)
                if key == "6"
                else await options.remove(call, state, away=True)
            )
        if key == "5":
            return options.new_pin(call, state)
        if key in ("#", "*"):
            return await messages.main_menu(call, state.next(uid=0, trash_uid=0))
        return options.options_page(call, state, [call.prompt("menu-invalid.j2")])
