"""Group sync: when one member hears or deletes a group copy, the other members' copies follow."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Literal

from vm2mail.config.model import Config, Mailbox
from vm2mail.errors import MailStoreError
from vm2mail.mailstore.voicemails import HANDLED, SEEN
from vm2mail.watcher.retention import trashed_keyword, utc_today
from vm2mail.watcher.state import WatchEvent

if TYPE_CHECKING:
    from vm2mail.watcher.watcher import Watcher

log = logging.getLogger(__name__)

# IMAP keyword (RFC 3501 §2.3.2) naming the member who handled a group copy; a mail client shows it as
# a tag, and `UID SEARCH KEYWORD $Vm2mailHandledBy_201` finds the copies mailbox 201 handled.
HANDLED_BY = "$Vm2mailHandledBy_"
_ATOM_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")

Action = Literal["seen", "trash"]


def handled_by(mailbox_id: str) -> str:
    return HANDLED_BY + _ATOM_UNSAFE.sub("_", mailbox_id)


def handlers(flags: frozenset[str]) -> list[str]:
    """Mailbox ids (as encoded in the keyword) that handled a copy with these flags."""
    return sorted(f[len(HANDLED_BY) :] for f in flags if f.startswith(HANDLED_BY))


def group_of(config: Config, event: WatchEvent) -> Mailbox | None:
    """The group whose copy this is (X-Vm2mail-Mailbox names it), if group sync is on for it."""
    group = config.mailboxes.get(event.entry.mailbox or "")
    if group is None or not group.is_group or not group.group_sync or event.mailbox.id not in group.members:
        return None
    return group if event.entry.message_id else None


def action_for(watcher: Watcher, event: WatchEvent) -> Action | None:
    """What the other copies must do: a member heard it (\\Seen set by them) or removed it."""
    if event.kind == "flags" and event.became_seen and HANDLED not in event.entry.flags:
        return "seen"  # a copy marked seen by group sync carries HANDLED: never echo it back
    if event.kind == "removed" and not watcher.moved_by_gateway(event.mailbox.id, event.entry.uid):
        return "trash"  # expunged or moved away by the member (any folder): deleted for the group
    return None


async def follow(watcher: Watcher, event: WatchEvent) -> None:
    """Apply one member's change to the other members' copies (same Message-ID) of a group voicemail."""
    config = watcher.config()
    group = group_of(config, event)
    action = action_for(watcher, event) if group is not None else None
    if group is None or action is None:
        return
    message_id = event.entry.message_id
    assert message_id is not None
    actor = event.mailbox.id
    for member_id in group.members:
        member = config.mailboxes.get(member_id)
        if member_id == actor or member is None or member.is_group:
            continue
        try:
            await _apply(watcher, member, message_id, action, actor)
        except MailStoreError as exc:
            # The member's next sync does not retry this; log it so the admin can see the gap.
            log.warning(
                "group %s: %s of %s in mailbox %s failed: %s", group.id, action, message_id, member_id, exc
            )


async def _apply(watcher: Watcher, member: Mailbox, message_id: str, action: Action, actor: str) -> None:
    session = watcher.session(member.id)
    known = session.state.by_message_id(message_id) if session is not None and session.state.synced else None
    if known is not None:
        uid: int | None = known.uid
        if action == "seen" and SEEN in known.flags:
            return
    else:
        uid = await watcher.store.find_message_id(member, member.folder, message_id)
    if uid is None:
        return  # that member already deleted (or never got) the copy
    marks = (HANDLED, handled_by(actor))
    if action == "seen":
        await watcher.voicemails.set_flags(member, [uid], add=(SEEN, *marks))
        log.info("group copy %s in mailbox %s marked heard (handled by %s)", message_id, member.id, actor)
        return
    trash = await watcher.voicemails.trash_folder(member)
    # The marks travel with the message (RFC 6851 MOVE keeps flags): trash_days knows it is ours.
    await watcher.voicemails.set_flags(member, [uid], add=(*marks, trashed_keyword(utc_today())))
    watcher.note_move(member.id, uid)
    await watcher.voicemails.move(member, uid, member.folder, trash)
    log.info("group copy %s in mailbox %s moved to %r (deleted by %s)", message_id, member.id, trash, actor)
