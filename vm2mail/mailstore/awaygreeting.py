"""The away greeting: a second greeting kind, in ``<folder>/Greetings/Away``, played while diverted.

It works like the mailbox greeting (mailstore/greetings.py): recorded by phone (options key 6) or
uploaded by dropping an e-mail with an audio attachment into that folder; the newest one plays.
"""

from __future__ import annotations

from vm2mail.config.model import Mailbox
from vm2mail.mailstore.greetings import SUBFOLDER, Greetings

AWAY_SUBFOLDER = "Away"


class AwayGreetings(Greetings):
    """``Greetings`` over the away folder: same caching, saving (older ones to Trash) and removal."""

    def folder(self, mailbox: Mailbox) -> str:
        return f"{mailbox.folder}/{SUBFOLDER}/{AWAY_SUBFOLDER}"
