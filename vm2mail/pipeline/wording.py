"""How a voicemail names its caller and itself to people, in the mailbox's language (en, de)."""

from __future__ import annotations

from datetime import datetime

from vm2mail import phone
from vm2mail.config.model import Mailbox
from vm2mail.jobs.jobs import CallInfo

_WORDS: dict[str, dict[str, str]] = {
    "en-US": {
        "withheld": "Withheld number",
        "unknown": "Unknown caller",
        "extension": "Extension {extension}",
        "title": "Voicemail from {who}",
        "comment": "Voicemail from {who} for {called}, mailbox {mailbox}, {date}, call {call_id}",
        "date": "%Y-%m-%d %H:%M %Z",
    },
    "de-DE": {
        "withheld": "Rufnummer unterdrückt",
        "unknown": "Unbekannter Anrufer",
        "extension": "Nebenstelle {extension}",
        "title": "Sprachnachricht von {who}",
        "comment": "Sprachnachricht von {who} für {called}, Mailbox {mailbox}, {date}, Anruf {call_id}",
        "date": "%d.%m.%Y %H:%M %Z",
    },
}


def words(language: str) -> dict[str, str]:
    return _WORDS.get(language, _WORDS["en-US"])


def clean(value: str | None) -> str:
    """One line of printable text: CNAM and PBX names may carry control characters or line breaks."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in value or "").split())


def name_of(call: CallInfo) -> str | None:
    """The caller's name, cleaned; None for none, or for the words carriers put there when the
    number is withheld ("Anonymous", "UNKNOWN"), which are not a name ("Anonymous (anonymous)")."""
    name = clean(call.caller_name)
    return None if phone.withheld(name) else name


def number_shown(call: CallInfo, mailbox: Mailbox) -> str | None:
    """The caller's number as the mailbox's user reads it (national at home, international else)."""
    shown = phone.display(call.caller, mailbox.country)
    if shown and call.extension:
        return f"{shown} ({words(mailbox.language)['extension'].format(extension=call.extension)})"
    return shown


def who(call: CallInfo, mailbox: Mailbox) -> str:
    """The caller's name, else the number, else the extension, else "Withheld number"."""
    w = words(mailbox.language)
    if name := name_of(call):
        return name
    if shown := number_shown(call, mailbox):
        return shown
    if call.extension:
        return w["extension"].format(extension=call.extension)
    return w["withheld"]


def title(call: CallInfo, mailbox: Mailbox) -> str:
    return words(mailbox.language)["title"].format(who=who(call, mailbox))


def comment(call: CallInfo, mailbox: Mailbox, date: datetime) -> str:
    """The ID3 comment: who, for which number and mailbox, when (local time with the zone)."""
    w = words(mailbox.language)
    local = date.astimezone(mailbox.tz)
    return w["comment"].format(
        who=who(call, mailbox),
        called=phone.display(call.called, mailbox.country) or call.called,
        mailbox=mailbox.id,
        date=local.strftime(w["date"]),
        call_id=call.call_sid,
    )
