"""Message keys of the menu (as in Asterisk VoiceMailMain): play, 4/5/6, delete/restore, save, envelope."""

from __future__ import annotations

import bisect
import dataclasses
import logging

from vm2mail import phone
from vm2mail.jobs.jobs import caller_number
from vm2mail.mailstore.voicemails import FLAGGED, SEEN, Entry, Listing, counts
from vm2mail.menu.call import Call
from vm2mail.telephony import media, twiml
from vm2mail.telephony.menustate import HEARD_KEEP, MenuState

log = logging.getLogger(__name__)

NEW, OLD = "new", "old"


def _key(entry: Entry) -> tuple[int, int]:
    return (int(entry.date.timestamp()), entry.uid)


def group(listing: Listing, mode: str, heard: tuple[int, ...]) -> list[Entry]:
    """The messages 4/6 walk through, oldest first: unheard ones (plus those heard in this call) in the
    "new" group, the rest in "old". Flags are re-read every step, so the groups follow the mail client."""
    if mode == NEW:
        if not heard:
            return list(listing.new)
        known = frozenset(heard)
        return [e for e in listing.entries if e.new or e.uid in known]
    known = frozenset(heard)
    return [e for e in listing.entries if not e.new and e.uid not in known]


async def main_menu(call: Call, state: MenuState, *, first: list[twiml.Spoken] | None = None) -> str:
    """Counts ("You have N new and M saved messages") and the main keys."""
    mailbox = call.mailbox
    assert mailbox is not None
    tally = counts(await call.deps.voicemails.listing(mailbox))
    items: list[twiml.Spoken] = [*(first or [])]
    items.append(call.prompt("menu-counts.j2", new=tally.new, saved=tally.saved, heard=tally.heard))
    items.append(call.prompt("menu-main.j2"))
    return call.page(state.next(step="main", quiet=0), items)


def message_page(call: Call, state: MenuState, items: list[twiml.Spoken]) -> str:
    return call.page(state.next(step="msg", quiet=0), [*items, call.prompt("menu-after-message.j2")])


async def reveal(call: Call, entry: Entry) -> Entry:
    """``entry`` with the caller details a private mailbox keeps only inside the encryption, read from
    the message decrypted with the playback key (cached with its audio); unchanged elsewhere."""
    mailbox = call.mailbox
    assert mailbox is not None
    if not (mailbox.private and entry.encrypted and entry.caller is None and entry.caller_name is None):
        return entry
    found = await call.deps.playback.details(mailbox, mailbox.folder, entry.uid)
    duration = found.get("X-Vm2mail-Duration", "")
    return dataclasses.replace(
        entry,
        caller=caller_number(found.get("X-Vm2mail-Caller")),
        caller_name=found.get("X-Vm2mail-Caller-Name") or None,
        called=found.get("X-Vm2mail-Called") or entry.called,
        duration=int(duration) if duration.isdigit() else entry.duration,
    )


async def envelope_prompt(call: Call, entry: Entry, *, callback: bool) -> twiml.Spoken:
    mailbox = call.mailbox
    assert mailbox is not None
    return call.prompt(
        "menu-envelope.j2",
        when=entry.date.astimezone(mailbox.tz),
        # Spoken as the user dials it: "0 3 0 …" at home, "4 3 1 …" (country code first) from abroad.
        caller=phone.display(entry.caller, mailbox.country),
        caller_name=entry.caller_name,
        duration=entry.duration,
        callback=callback,
    )


async def play(
    call: Call,
    state: MenuState,
    entry: Entry,
    mode: str,
    listing: Listing,
    *,
    lead: list[twiml.Spoken] | None = None,
    members: list[Entry] | None = None,
) -> str:
    """Announce and play ``entry`` inside the Gather (any key interrupts), marking it \\Seen."""
    mailbox = call.mailbox
    assert mailbox is not None
    if members is None:
        members = group(listing, mode, state.heard)
    # The group is in (date, UID) order (the listing's order): find the position by bisection.
    at = bisect.bisect_left(members, _key(entry), key=_key)
    number = at + 1 if at < len(members) and members[at].uid == entry.uid else 1
    items: list[twiml.Spoken] = [
        *(lead or []),
        call.prompt("menu-message.j2", new=entry.new, number=number, total=len(members)),
    ]
    playable = True
    if entry.encrypted:
        # Only the gateway's playback key can open it; otherwise the envelope is all we can say.
        playable = await call.deps.playback.audio(mailbox, mailbox.folder, entry.uid) is not None
    heard = state.heard
    if playable:
        url = media.play_url(call.deps.config(), mailbox, mailbox.folder, entry.uid, listing.uidvalidity)
        items.append(twiml.Play(url))
        if entry.new:
            await call.deps.voicemails.set_flags(mailbox, [entry.uid], add=(SEEN,))
            # Heard in this call: it stays in the "new" sequence for 4/6, though now \Seen.
            if entry.uid not in heard:
                heard = (*heard, entry.uid)[-HEARD_KEEP:]
    else:
        log.info("call %s: UID %d cannot be played by phone (no playback key)", call.call_sid, entry.uid)
        items.append(await envelope_prompt(call, entry, callback=False))
        items.append(call.prompt("menu-no-playback.j2"))
    moved = state.next(uid=entry.uid, date=int(entry.date.timestamp()), mode=mode, trash_uid=0, heard=heard)
    return message_page(call, moved, items)


async def first(call: Call, state: MenuState) -> str:
    """Key 1: the oldest unheard message, else the oldest heard one."""
    mailbox = call.mailbox
    assert mailbox is not None
    listing = await call.deps.voicemails.listing(mailbox)
    for mode in (NEW, OLD):
        members = group(listing, mode, state.heard)
        if members:
            return await play(call, state, members[0], mode, listing, members=members)
    return await main_menu(call, state, first=[call.prompt("menu-no-messages.j2", more=False)])


async def step(call: Call, state: MenuState, forward: bool) -> str:
    """Keys 6 (``forward``) and 4: the neighbour of the current message in its group, by (date, UID)."""
    mailbox = call.mailbox
    assert mailbox is not None
    if not state.uid:
        return await first(call, state)
    listing = await call.deps.voicemails.listing(mailbox)
    mode = state.mode or NEW
    here = (state.date, state.uid)
    members = group(listing, mode, state.heard)
    if forward:
        at = bisect.bisect_right(members, here, key=_key)
        if at < len(members):
            return await play(call, state, members[at], mode, listing, members=members)
        if mode == NEW:
            olds = group(listing, OLD, state.heard)
            if olds:
                lead: list[twiml.Spoken] = [call.prompt("menu-old-messages.j2")]
                return await play(call, state, olds[0], OLD, listing, lead=lead)
    else:
        at = bisect.bisect_left(members, here, key=_key)
        if at > 0:
            return await play(call, state, members[at - 1], mode, listing, members=members)
        if mode == OLD:  # before the first old message: back to the last new one, as 6 crossed over
            news = group(listing, NEW, state.heard)
            if news:
                lead = [call.prompt("menu-new-messages.j2")]
                return await play(call, state, news[-1], NEW, listing, lead=lead, members=news)
    return message_page(call, state, [call.prompt("menu-no-messages.j2", more=True)])


async def current(call: Call, state: MenuState) -> Entry | None:
    mailbox = call.mailbox
    assert mailbox is not None
    if not state.uid or state.trash_uid:
        return None
    return await call.deps.voicemails.entry(mailbox, state.uid)


async def repeat(call: Call, state: MenuState) -> str:
    """Key 5: play the current message again (re-read: it may be gone meanwhile)."""
    if not state.uid:
        return await first(call, state)
    entry = await current(call, state)
    if entry is None:
        return message_page(call, state, [call.prompt("menu-gone.j2")])
    mailbox = call.mailbox
    assert mailbox is not None
    listing = await call.deps.voicemails.listing(mailbox)
    return await play(call, state, entry, state.mode or NEW, listing)


async def delete(call: Call, state: MenuState) -> str:
    """Key 7: MOVE to the account's \\Trash (recoverable in the mail client); 7 again moves it back."""
    mailbox = call.mailbox
    assert mailbox is not None
    if not state.uid:
        return call.page(state.next(step="main"), [call.prompt("menu-no-message.j2")])
    voicemails = call.deps.voicemails
    trash = await voicemails.trash_folder(mailbox)
    if state.trash_uid:
        back = await voicemails.move(mailbox, state.trash_uid, trash, mailbox.folder)
        if back is None:
            return message_page(call, state.next(trash_uid=0), [call.prompt("menu-gone.j2")])
        heard = tuple(back if u == state.uid else u for u in state.heard)
        log.info("call %s: restored UID %d from %s as %d", call.call_sid, state.trash_uid, trash, back)
        restored = state.next(uid=back, trash_uid=0, heard=heard)
        return message_page(call, restored, [call.prompt("menu-restored.j2")])
    moved = await voicemails.move(mailbox, state.uid, mailbox.folder, trash)
    if moved is None:
        return message_page(call, state, [call.prompt("menu-gone.j2")])
    log.info("call %s: moved UID %d to %s as %d", call.call_sid, state.uid, trash, moved)
    return message_page(call, state.next(trash_uid=moved), [call.prompt("menu-deleted.j2")])


async def save(call: Call, state: MenuState) -> str:
    """Key 9: \\Flagged (a star in the mail client)."""
    mailbox = call.mailbox
    assert mailbox is not None
    entry = await current(call, state)
    if entry is None:
        name = "menu-gone.j2" if state.uid else "menu-no-message.j2"
        return message_page(call, state, [call.prompt(name)])
    await call.deps.voicemails.set_flags(mailbox, [entry.uid], add=(FLAGGED,))
    return message_page(call, state, [call.prompt("menu-saved.j2")])


async def envelope(call: Call, state: MenuState) -> str:
    """Key 3: when (mailbox time zone), from whom (digit by digit), how long; then 2 calls back."""
    entry = await current(call, state)
    if entry is None:
        name = "menu-gone.j2" if state.uid else "menu-no-message.j2"
        return message_page(call, state, [call.prompt(name)])
    entry = await reveal(call, entry)
    prompt = await envelope_prompt(call, entry, callback=entry.caller is not None)
    return call.page(state.next(step="env", quiet=0), [prompt])


async def callback(call: Call, state: MenuState) -> str:
    """3 then 2: ``<Dial>`` the caller with the mailbox's number as caller ID; back to the menu after."""
    mailbox = call.mailbox
    assert mailbox is not None
    entry = await current(call, state)
    entry = await reveal(call, entry) if entry is not None else None
    if entry is None or entry.caller is None:
        return message_page(call, state, [call.prompt("menu-no-callback.j2")])
    caller_id = mailbox.numbers[0] if mailbox.numbers else call.form.get("To", "")
    log.info("call %s: calling back the caller of UID %d", call.call_sid, entry.uid)
    return twiml.dial_back(
        items=[call.prompt("menu-calling.j2", caller=entry.caller)],
        number=entry.caller,
        caller_id=caller_id,
        action=call.url(state.next(step="dialed", call=call.call_sid)),
    )
