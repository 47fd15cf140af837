"""One menu request: its dependencies, decoded state, pressed keys and helpers that build the TwiML reply."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp

from vm2mail.config.model import Config, Mailbox
from vm2mail.logins import Alert, Logins
from vm2mail.mailstore.greetings import Greetings
from vm2mail.mailstore.metadata import Metadata
from vm2mail.mailstore.voicemails import Voicemails
from vm2mail.playback import Playback
from vm2mail.routing.switches import Switches
from vm2mail.telephony import twiml
from vm2mail.telephony.menustate import MenuState, encode
from vm2mail.telephony.prompts import Prompt, render_prompt

GOODBYE = "menu-goodbye.j2"


@dataclass
class MenuDeps:
    """What the menu needs from the composition root; ``alert`` is set by whoever sends admin alerts."""

    config: Callable[[], Config]
    voicemails: Voicemails
    metadata: Metadata
    playback: Playback
    greetings: Greetings
    http: aiohttp.ClientSession  # fetches recorded greetings from Twilio
    delete_recording: Callable[[str], Awaitable[None]] | None = None  # TwilioRest.delete_recording
    alert: Alert | None = None  # (subject, text) to the admin; logged when None
    logins: Logins | None = None  # built from the above on first use
    switches: Switches | None = None  # divert switch for the options menu (key 4)
    away_greetings: Greetings | None = None  # the away greeting (keys 6 and 7)

    def login_service(self) -> Logins:
        if self.logins is None:
            self.logins = Logins(self.config, self.metadata, self._alert)
        return self.logins

    async def _alert(self, subject: str, text: str) -> None:
        if self.alert is not None:
            await self.alert(subject, text)


@dataclass
class Call:
    """The request being answered: config snapshot, the call's parameters, the state and the keys."""

    deps: MenuDeps
    config: Config
    form: Mapping[str, str]
    call_sid: str
    state: MenuState
    digits: str

    @property
    def mailbox(self) -> Mailbox | None:
        return self.config.mailboxes.get(self.state.mailbox) if self.state.mailbox else None

    def prompt(self, name: str, **context: object) -> Prompt:
        """``templates/prompts/<lang>/<name>``: the mailbox's language once it is known to be the caller's."""
        mailbox = self.mailbox
        trusted = mailbox is not None and (self.state.by_owner or self.state.logged_in)
        language = mailbox.language if trusted and mailbox is not None else self.config.defaults.language
        return render_prompt(
            name,
            language,
            {"mailbox": mailbox if trusted else None, "by_owner": self.state.by_owner, **context},
            override=self.config.templates_dir,
        )

    def url(self, state: MenuState) -> str:
        token = encode(self.config.server.secret_key, state)
        return twiml.absolute_url(self.config.server.public_url, twiml.MENU_PATH, s=token)

    def page(
        self, state: MenuState, items: list[twiml.Spoken], *, collect: bool = False, timeout: int = 6
    ) -> str:
        """Speak ``items`` and wait for one key (or, with ``collect``, digits up to ``#``)."""
        return twiml.menu_page(
            action=self.url(state.next(call=self.call_sid)),
            items=items,
            num_digits=None if collect else 1,
            timeout=10 if collect else timeout,
        )

    def bye(self, *items: twiml.Spoken, goodbye: bool = True) -> str:
        tail = [self.prompt(GOODBYE)] if goodbye else []
        return twiml.speak_and_hangup([*items, *tail])
