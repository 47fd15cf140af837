"""Notification texts name the caller as the owner reads numbers: national at home, withheld in words."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from tests.pipeline.test_message import mailbox
from vm2mail.mailstore.voicemails import Entry
from vm2mail.notify.policy import NOTIFY
from vm2mail.notify.texts import voicemail_texts

ENTRY = Entry(
    uid=1, flags=frozenset(), message_id="<a@b>", kind="voicemail", caller="+493012345678",
    caller_name=None, called="+4930999000", mailbox="201", call_id="CA1",
    date=datetime(2026, 12, 5, 13, 3, tzinfo=UTC), duration=12, encrypted=False, size=1000,
)  # fmt: skip


def test_numbers_in_the_owners_format_and_withheld_callers_in_words() -> None:
    german = mailbox(country="DE", language="de-DE")
    texts = voicemail_texts(NOTIFY, ENTRY, german, None, "de-DE", 1, None)
    assert "von 030 12345678," in texts.sms and "Neue Sprachnachricht von 030 12345678" in texts.subject
    abroad = voicemail_texts(NOTIFY, ENTRY, mailbox(country="US"), None, "en-US", 1, None)
    assert "from +49 30 12345678," in abroad.sms
    withheld = dataclasses.replace(ENTRY, caller=None)
    assert (
        "von Rufnummer unterdrückt," in voicemail_texts(NOTIFY, withheld, german, None, "de-DE", 1, None).sms
    )
    # A private mailbox's headers name nobody: the caller is unknown there, not withheld.
    private = dataclasses.replace(withheld, encrypted=True)
    hidden = voicemail_texts(NOTIFY, private, mailbox(private=True), None, "en-US", 1, None)
    assert "from Unknown caller," in hidden.sms
