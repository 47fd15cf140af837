"""Notification, reminder and alert texts (SMS and e-mail) from the language templates; never audio."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vm2mail import phone
from vm2mail.config.model import Mailbox
from vm2mail.mailstore.voicemails import Entry
from vm2mail.notify.policy import NOTIFY
from vm2mail.pipeline import wording
from vm2mail.templating import environment, language_template

SMS_MAX_CHARS = 320  # two concatenated segments; Twilio splits longer bodies into more (billed) parts


@dataclass(frozen=True, kw_only=True)
class Texts:
    sms: str
    subject: str
    body: str


def one_line(text: str) -> str:
    """``text`` with every run of white space (line breaks too) as one space: for SMS and subjects."""
    return " ".join(text.split())


def render(kind: str, language: str, name: str, override: Path | None, context: dict[str, object]) -> str:
    """Template ``name`` of ``kind`` (``sms``, ``email``) in ``language`` (or its fallback), rendered."""
    env = environment(override)
    return env.get_template(language_template(kind, language, name, override)).render(**context)


def voicemail_context(
    entry: Entry, owner: Mailbox, called: Mailbox | None, language: str, number: int
) -> dict[str, object]:
    """The variables of the notify/reminder templates: caller, time in the owner's zone, duration."""
    started = entry.date.astimezone(owner.tz)
    words = wording.words(language)
    shown = phone.display(entry.caller, owner.country)
    # A private mailbox's headers name no caller: unknown here, not withheld.
    nobody = words["unknown"] if owner.private and entry.encrypted else words["withheld"]
    return {
        "caller": entry.caller,
        "caller_display": shown,  # "030 1234567" for a German owner, "+43 1 5123456" from Austria
        "who": entry.caller_name or shown or nobody,
        "caller_name": entry.caller_name,
        "started": started,
        "tz_abbr": started.tzname() or "",
        "duration": entry.duration,
        "mailbox_id": (called or owner).id,
        "mailbox_name": (called or owner).name,
        "is_group": bool(called and called.is_group),
        "owner_name": owner.name,
        "folder": owner.folder,
        "reminder": number,
        "language": language,
    }


def voicemail_texts(
    kind: str,
    entry: Entry,
    owner: Mailbox,
    called: Mailbox | None,
    language: str,
    number: int,
    override: Path | None,
) -> Texts:
    """SMS body and e-mail subject/body for the notification (``kind`` NOTIFY) or a reminder."""
    context = voicemail_context(entry, owner, called, language, number)
    base = "notify" if kind == NOTIFY else "notify-reminder"
    sms_name = "notify.j2" if kind == NOTIFY else "reminder.j2"
    return Texts(
        sms=one_line(render("sms", language, sms_name, override, context))[:SMS_MAX_CHARS],
        subject=one_line(render("email", language, f"{base}.subject.j2", override, context)),
        body=render("email", language, f"{base}.txt.j2", override, context),
    )


def alert_texts(subject: str, text: str, language: str, override: Path | None, suppressed: int) -> Texts:
    """The admin alert: ``subject`` and ``text`` as given by the caller, wrapped by the alert templates."""
    # The templates say who is writing ("vm2mail alert:", "[vm2mail]"); callers' subjects may too.
    subject = subject.removeprefix("vm2mail: ")
    context: dict[str, object] = {"subject": subject, "text": text, "suppressed": suppressed}
    return Texts(
        sms=one_line(render("sms", language, "alert.j2", override, context))[:SMS_MAX_CHARS],
        subject=one_line(render("email", language, "alert.subject.j2", override, context)),
        body=render("email", language, "alert.txt.j2", override, context),
    )
