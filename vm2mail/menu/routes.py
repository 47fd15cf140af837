"""``POST /twilio/menu`` and the hooks the voicemail call flow takes from the menu (recorded greetings)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from vm2mail.config.model import Mailbox
from vm2mail.errors import MailStoreError, SignatureError
from vm2mail.menu.call import MenuDeps
from vm2mail.menu.flow import Menu
from vm2mail.telephony import prompts, twiml
from vm2mail.telephony.webhooks import form_of

log = logging.getLogger(__name__)


def add_menu_routes(app: web.Application, deps: MenuDeps) -> None:
    """Register ``POST /twilio/menu``; the telephony ``guard`` (added by add_routes) checks signatures."""
    menu = Menu(deps)

    async def handle(request: web.Request) -> web.Response:
        form = await form_of(request)
        call_sid = form.get("CallSid", "")[:34]
        try:
            document = await menu.step(form, request.query.get("s"), call_sid)
        except SignatureError as exc:
            log.warning("call %s: menu state refused: %s", call_sid or "?", exc)
            return web.Response(status=403, text="Forbidden: invalid menu state\n", content_type="text/plain")
        except MailStoreError as exc:
            # The IMAP server is the only truth: without it, say so and end the call (never guess).
            log.error("call %s: menu step failed, mail store unavailable: %s", call_sid or "?", exc)
            prompt = prompts.service_prompt(deps.config(), "menu-unavailable.j2")
            document = twiml.say_and_hangup(prompt)
        return web.Response(text=document, content_type="application/xml")

    app.router.add_post(twiml.MENU_PATH, handle)


def greeting_url(deps: MenuDeps, *, away: bool = False) -> Callable[[Mailbox], Awaitable[str | None]]:
    """For the call flow: the signed URL of the mailbox's recorded (``away``: away) greeting, None for
    the spoken one."""

    async def lookup(mailbox: Mailbox) -> str | None:
        greetings = deps.away_greetings if away else deps.greetings
        if greetings is None:
            return None
        try:
            greeting = await greetings.current(mailbox)
        except MailStoreError as exc:
            log.warning("mailbox %s: greeting not readable, using the spoken one: %s", mailbox.id, exc)
            return None
        if greeting is None:
            return None
        return deps.playback.url(mailbox, greeting.folder, greeting.uid)

    return lookup
