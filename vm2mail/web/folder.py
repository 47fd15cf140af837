"""The web inbox's view of a mailbox: pages of voicemails, newest first, over the shared folder reader.

This adapter is the only place the web package touches the folder reader (vm2mail.mailstore.voicemails),
so re-pointing the inbox at another folder view means changing this module alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vm2mail import phone
from vm2mail.config.model import Mailbox
from vm2mail.mailstore.voicemails import FLAGGED, SEEN, Counts, Entry, Listing, Voicemails

__all__ = ["ACTIONS", "VIEWS", "Entry", "InboxFolders", "Page", "entry_json"]

VIEWS = ("new", "all", "saved", "trash")
ACTIONS = ("heard", "unheard", "save", "unsave", "delete", "restore")


@dataclass(frozen=True)
class Page:
    page: int
    pages: int
    total: int
    entries: list[Entry]
    counts: Counts


def entry_json(mailbox: Mailbox, entry: Entry) -> dict[str, Any]:
    """What the page shows of one voicemail: never more than the outer headers say."""
    return {
        "uid": entry.uid,
        "kind": entry.kind,
        "caller": entry.caller,
        "caller_display": phone.display(entry.caller, mailbox.country),  # as the owner dials it
        "caller_name": entry.caller_name,
        "date": entry.date.astimezone(mailbox.tz).isoformat(timespec="seconds"),
        "duration": entry.duration,
        "state": Counts.bucket(entry),
        "saved": entry.saved,
        "encrypted": entry.encrypted,
    }


class InboxFolders:
    """Listing and changing one mailbox's voicemail folder and its Trash for the web inbox."""

    def __init__(self, voicemails: Voicemails) -> None:
        self.voicemails = voicemails

    async def folder(self, mailbox: Mailbox, view: str) -> str:
        return await self.voicemails.trash_folder(mailbox) if view == "trash" else mailbox.folder

    async def listing(self, mailbox: Mailbox, view: str) -> Listing:
        return await self.voicemails.listing(mailbox, await self.folder(mailbox, view))

    async def page(self, mailbox: Mailbox, view: str, page: int, size: int) -> Page:
        """Page ``page`` (from 1) of ``view``, newest first; pages past the end are empty."""
        listing = await self.listing(mailbox, view)
        if view == "new":
            chosen: tuple[Entry, ...] | list[Entry] = listing.new
        elif view == "saved":
            chosen = [e for e in listing.entries if e.saved]
        else:
            chosen = listing.entries
        total = len(chosen)
        pages = max(1, -(-total // size))
        # The listing is oldest first: index from the end instead of reversing 10,000 entries.
        end = total - (page - 1) * size
        start = max(0, end - size)
        entries = list(reversed(chosen[start:end])) if end > 0 else []
        # The filter buttons count the inbox folder's voicemails, also while the Trash is shown.
        counts = listing.counts if view != "trash" else (await self.listing(mailbox, "all")).counts
        return Page(page, pages, total, entries, counts)

    async def entry(self, mailbox: Mailbox, uid: int, view: str) -> Entry | None:
        """The voicemail ``uid`` of ``view``'s folder; None when gone or not a voicemail."""
        return await self.voicemails.entry(mailbox, uid, await self.folder(mailbox, view))

    async def raw(self, mailbox: Mailbox, uid: int, view: str) -> bytes | None:
        return await self.voicemails.fetch(mailbox, uid, await self.folder(mailbox, view))

    async def act(self, mailbox: Mailbox, uid: int, view: str, action: str) -> int | None:
        """Apply ``action``; the message's UID afterwards (a move gives a new one), None when gone."""
        if action in ("delete", "restore"):
            trash = await self.voicemails.trash_folder(mailbox)
            source, target = (mailbox.folder, trash) if action == "delete" else (trash, mailbox.folder)
            return await self.voicemails.move(mailbox, uid, source, target)
        folder = await self.folder(mailbox, view)
        flag = SEEN if action in ("heard", "unheard") else FLAGGED
        adding = action in ("heard", "save")
        await self.voicemails.set_flags(
            mailbox, [uid], add=(flag,) if adding else (), remove=() if adding else (flag,), folder=folder
        )
        return uid
