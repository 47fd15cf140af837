"""``POST /twilio/menu`` and the hooks the voicemail call flow takes from the menu (recorded greetings)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from vm2mail.config.model import Config, Mailbox
from vm2mail.errors import MailStoreError, SignatureError
from vm2mail.mailstore.greetings import Greeting
from vm2mail.menu.call import MenuDeps
from vm2mail.menu.flow import Menu
from vm2mail.telephony import media, prompts, twiml
from vm2mail.telephony.callpath import CachedLookup, within
from vm2mail.telephony.menustate import decode
from vm2mail.telephony.webhooks import form_of

log = logging.getLogger(__name__)

UNAVAILABLE = "menu-unavailable.j2"


def add_menu_routes(app: web.Application, deps: MenuDeps) -> None:
    """Register ``POST /twilio/menu``; the telephony ``guard`` (added by add_routes) checks signatures."""
    menu = Menu(deps)

    async def handle(request: web.Request) -> web.Response:
        form = await form_of(request)
        call_sid = form.get("CallSid", "")[:34]
        budget = deps.config().server.call_budget_seconds
        try:
            # A hung mail store must not leave the caller in silence until Twilio gives up (15 s).
            answered, document = await within(budget, menu.step(form, request.query.get("s"), call_sid))
            if not answered or document is None:
                raise MailStoreError(f"no answer from the mail store within {budget:.1f}s", temporary=True)
        except SignatureError as exc:
            log.warning("call %s: menu state refused: %s", call_sid or "?", exc)
            return web.Response(status=403, text="Forbidden: invalid menu state\n", content_type="text/plain")
        except MailStoreError as exc:
            # The IMAP server is the only truth: without it, say so and end the call (never guess).
            log.error("call %s: menu step failed, mail store unavailable: %s", call_sid or "?", exc)
            document = twiml.say_and_hangup(_unavailable(deps.config(), request.query.get("s"), call_sid))
        return web.Response(text=document, content_type="application/xml")

    app.router.add_post(twiml.MENU_PATH, handle)


def _unavailable(config: Config, token: str | None, call_sid: str) -> prompts.Prompt:
    """ "Cannot be reached", in the language of the mailbox the call is about when the state names one."""
    try:
        state = decode(config.server.secret_key, token, call_sid=call_sid) if token else None
    except SignatureError:
        state = None
    mailbox = config.mailboxes.get(state.mailbox or "") if state is not None else None
    if mailbox is not None:
        return prompts.mailbox_prompt(config, mailbox, UNAVAILABLE)
    return prompts.service_prompt(config, UNAVAILABLE)


def greeting_url(deps: MenuDeps, *, away: bool = False) -> Callable[[Mailbox], Awaitable[str | None]]:
    """For the call flow: the signed URL of the mailbox's recorded (``away``: away) greeting, None for
    the spoken one."""

    # Cache-first (callpath): the greeting last found plays while IMAP is slow or away; the URL is
    # signed afresh for every call because it expires after menu.media_ttl_seconds.
    cache = CachedLookup[Greeting | None]("greeting lookup")

    async def lookup(mailbox: Mailbox) -> str | None:
        greetings = deps.away_greetings if away else deps.greetings
        if greetings is None:
            return None
        budget = deps.config().server.call_budget_seconds
        greeting = await cache.get(mailbox.id, lambda: greetings.current(mailbox), None, budget)
        if greeting is None:
            return None
        return media.play_url(deps.config(), mailbox, greeting.folder, greeting.uid)

    return lookup
