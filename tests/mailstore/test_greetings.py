"""mailstore.greetings on a real Dovecot: save, current, remove, and greetings dropped in by a mail client."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from tests.fixtures.dovecot import MailClient
from tests.mailstore.test_voicemails import mailbox, vm
from tests.telephony.test_media import tone_wav
from vm2mail.devstack.dovecot import DevDovecot
from vm2mail.mailstore import ImapStore
from vm2mail.mailstore.greetings import Greeting, Greetings, is_greetings_folder
from vm2mail.mailstore.voicemails import Voicemails

Account = Callable[..., tuple[str, str]]
Client = Callable[[str, str], MailClient]


def email_with_wav(wav: Path) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "anna@example.com"
    msg["To"] = "anna@example.com"
    msg["Subject"] = "my new greeting"
    msg.set_content("Here it is.\n")
    msg.add_attachment(wav.read_bytes(), maintype="audio", subtype="wav", filename="hello.wav")
    return msg.as_bytes()


def test_save_current_remove_and_client_dropped_greeting(
    dovecot: DevDovecot, imap_account: Account, mail_client: Client, tmp_path: Path
) -> None:
    user, password = imap_account()
    box = mailbox(user, password)
    client = mail_client(user, password)
    store = ImapStore(dovecot.imap_config("none"))
    greetings = Greetings(store, Voicemails(store))
    folder = "Voicemail/Greetings"
    wav = tone_wav(tmp_path / "greeting.wav", seconds=2)

    async def scenario() -> None:
        try:
            assert greetings.folder(box) == folder and is_greetings_folder(box, folder)
            assert not is_greetings_folder(box, "Voicemail")
            assert await greetings.current(box) is None  # no folder yet
            first = await greetings.save(box, wav)
            assert await greetings.current(box) == first and first.folder == folder
            [stored] = client.messages(folder)
            assert stored.seen and stored.uid == first.uid
            parsed = email.message_from_bytes(stored.raw, policy=email.policy.default)
            assert parsed["Subject"] == "Your voicemail greeting"
            assert parsed.get_content_type() == "multipart/mixed"  # plain, not encrypted
            assert [p.get_content_type() for p in parsed.iter_attachments()] == ["audio/mpeg"]

            second = await greetings.save(box, wav)
            assert await greetings.current(box) == second
            assert [m.uid for m in client.messages(folder)] == [second.uid]  # the older one is in Trash
            assert len(client.messages("Trash")) == 1

            # A user drops an e-mail with a WAV attachment (and one without audio) into the folder.
            dropped = client.append(folder, email_with_wav(wav))
            client.append(folder, vm("note", "Sun, 22 Nov 2026 09:00:00 +0000"))
            assert await greetings.current(box) == Greeting(folder, dropped)
            assert (await greetings.current(box)) == Greeting(folder, dropped)  # cached, same answer

            # Deleted by the mail client: the next call uses the previous one.
            client.move(folder, dropped, "Trash")
            assert await greetings.current(box) == second

            assert await greetings.remove(box) == 1
            assert await greetings.current(box) is None
            assert len(client.messages(folder)) == 1  # the e-mail without audio stays
            assert await greetings.remove(box) == 0
            # Greetings never show up as voicemails of the mailbox.
            assert (await Voicemails(store).listing(box)).entries == ()
        finally:
            await store.close()

    asyncio.run(scenario())
