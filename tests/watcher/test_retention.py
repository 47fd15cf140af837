"""Retention: old voicemails go to Trash (saved ones stay), Trash is emptied only of the gateway's mail."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tests.fixtures.dovecot import MailClient
from tests.watcher.conftest import Setup, plain_mail, until, voicemail, watching
from vm2mail.mailstore.voicemails import Counts
from vm2mail.watcher.retention import trashed_keyword, trashed_on, utc_today


def ids(client: MailClient, folder: str) -> dict[str, frozenset[str]]:
    """Message-ID → flags of every message in ``folder``."""
    out: dict[str, frozenset[str]] = {}
    for m in client.messages(folder):
        for line in m.raw.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                out[line.split(b":", 1)[1].strip().decode()] = m.flags
    return out


def test_retention_and_trash_days(setup: Callable[..., Setup]) -> None:
    s = setup(
        {
            "201": {"retention_days": 30, "trash_days": 7},
            "202": {"retention_days": 30, "trash_days": None, "keep_saved": False},
        }
    )
    anna, bernd = s.clients["201"], s.clients["202"]
    old = datetime.now(UTC) - timedelta(days=60)
    recent = datetime.now(UTC) - timedelta(days=2)
    today = utc_today()
    for box, client in s.clients.items():
        client.create_folder("Voicemail")
        client.append("Voicemail", voicemail(mailbox=box, message_id="<old@vm>", date=old), date=old)
        client.append(
            "Voicemail",
            voicemail(mailbox=box, message_id="<saved@vm>", date=old),
            "\\Seen \\Flagged",
            date=old,
        )
        client.append("Voicemail", voicemail(mailbox=box, message_id="<recent@vm>", date=recent), date=recent)
        client.append("Voicemail", plain_mail().replace(b"Message-ID: <", b"Message-ID: <mail"), date=old)
        client.append("INBOX", voicemail(mailbox=box, message_id="<inbox@vm>", date=old), date=old)
    # Anna's Trash: what the gateway put there 20 and 3 days ago, one she deleted herself, other mail.
    anna.append(
        "Trash", voicemail(message_id="<expired@vm>"), trashed_keyword(today - timedelta(days=20)), old
    )
    anna.append("Trash", voicemail(message_id="<fresh@vm>"), trashed_keyword(today - timedelta(days=3)), old)
    anna.append("Trash", voicemail(message_id="<userdeleted@vm>"), "\\Seen", date=old)
    anna.append("Trash", plain_mail().replace(b"Message-ID: <", b"Message-ID: <trashmail"), date=old)

    async def scenario() -> None:
        async with watching(s.config) as (watcher, _):
            await until(
                lambda: watcher.counts("201") == Counts(new=1, heard=0, saved=1, total=2), "201 expired"
            )
            await until(
                lambda: watcher.counts("202") == Counts(new=1, heard=0, saved=0, total=1), "202 expired"
            )
            await until(lambda: "<expired@vm>" not in ids(anna, "Trash"), "Trash emptied")

    asyncio.run(scenario())
    folder, trash = ids(anna, "Voicemail"), ids(anna, "Trash")
    assert set(folder) == {"<saved@vm>", "<recent@vm>"} | {m for m in folder if m.startswith("<mail")}
    assert any(m.startswith("<mail") for m in folder)  # ordinary e-mail in the folder: untouched
    assert "<inbox@vm>" in ids(anna, "INBOX")  # other folders: untouched
    assert set(trash) - {m for m in trash if m.startswith("<trashmail")} == {
        "<old@vm>",
        "<fresh@vm>",
        "<userdeleted@vm>",
    }
    assert trash[next(m for m in trash if m.startswith("<trashmail"))] == frozenset()  # not even stamped
    assert trashed_on(trash["<old@vm>"]) == today  # moved today: kept trash_days from now
    assert trashed_on(trash["<userdeleted@vm>"]) == today  # first seen in Trash today
    assert trashed_on(trash["<fresh@vm>"]) == today - timedelta(days=3)
    # keep_saved off: Bernd's starred old voicemail went too; his Trash is never emptied (trash_days None).
    assert set(ids(bernd, "Voicemail")) - {m for m in ids(bernd, "Voicemail") if m.startswith("<mail")} == {
        "<recent@vm>"
    }
    assert {"<old@vm>", "<saved@vm>"} <= set(ids(bernd, "Trash"))
