"""The change events the watcher publishes (from the live folder views, mailstore/view.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vm2mail.config.model import Mailbox
from vm2mail.mailstore.voicemails import Entry

EventKind = Literal["new", "flags", "removed"]


@dataclass(frozen=True, kw_only=True, slots=True)
class WatchEvent:
    """One change the watcher saw in a mailbox folder (subscribers: notifications, group sync).

    ``new``: a voicemail appeared (``initial`` when it was already there at the first sync after a
    start or a UIDVALIDITY change, so it may have been handled before); ``flags``: its flags changed
    (``previous`` holds the old entry); ``removed``: it was expunged or moved away (``entry`` is the
    last known state).
    """

    kind: EventKind
    mailbox: Mailbox  # the (member) mailbox whose folder changed
    folder: str
    entry: Entry
    previous: Entry | None = None
    initial: bool = False

    @property
    def became_seen(self) -> bool:
        return self.kind == "flags" and not self.entry.new and self.previous is not None and self.previous.new
