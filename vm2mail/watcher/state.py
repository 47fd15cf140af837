"""Per-folder snapshots (UID → voicemail entry) and the change events the watcher derives from them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from vm2mail.config.model import Mailbox
from vm2mail.mailstore.voicemails import Counts, Entry

EventKind = Literal["new", "flags", "removed"]


@dataclass(frozen=True, kw_only=True)
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


@dataclass
class FolderState:
    """What the watcher knows of one folder: every UID (voicemail or not), the voicemails, sync state."""

    uidvalidity: int = 0
    highestmodseq: int | None = None
    uidnext: int = 0
    messages: int = 0
    uids: set[int] = field(default_factory=set)
    entries: dict[int, Entry] = field(default_factory=dict)
    synced: bool = False  # at least one complete sync happened

    @property
    def counts(self) -> Counts:
        new = sum(1 for e in self.entries.values() if e.new)
        saved = sum(1 for e in self.entries.values() if not e.new and e.saved)
        total = len(self.entries)
        return Counts(new=new, heard=total - new - saved, saved=saved, total=total)

    def by_message_id(self, message_id: str) -> Entry | None:
        for entry in self.entries.values():
            if entry.message_id == message_id:
                return entry
        return None

    def with_flags(self, uid: int, flags: frozenset[str]) -> None:
        entry = self.entries.get(uid)
        if entry is not None:
            self.entries[uid] = dataclasses.replace(entry, flags=flags)


def diff(
    mailbox: Mailbox, folder: str, old: dict[int, Entry], new: dict[int, Entry], *, initial: bool
) -> list[WatchEvent]:
    """The events that turn snapshot ``old`` into ``new`` (both UID → entry, same UIDVALIDITY)."""
    events: list[WatchEvent] = []
    for uid, entry in new.items():
        before = old.get(uid)
        if before is None:
            events.append(
                WatchEvent(kind="new", mailbox=mailbox, folder=folder, entry=entry, initial=initial)
            )
        elif before.flags != entry.flags:
            events.append(
                WatchEvent(kind="flags", mailbox=mailbox, folder=folder, entry=entry, previous=before)
            )
    for uid, entry in old.items():
        if uid not in new:
            events.append(WatchEvent(kind="removed", mailbox=mailbox, folder=folder, entry=entry))
    return events
