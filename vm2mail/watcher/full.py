"""The "mailbox full" notice: appended once into the owner's folder when the count reaches the limit."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from vm2mail.config.model import Config, Mailbox
from vm2mail.mailstore.connection import ImapConnection
from vm2mail.mailstore.voicemails import Counts
from vm2mail.templating import environment, language_template

log = logging.getLogger(__name__)

# Keyword on the current notice (RFC 3501 §2.3.2): while one carries it, no second notice is sent; it is
# taken off when the mailbox drops below the limit, so the next time it fills the owner is told again.
# The state lives in the folder itself, so restarts and several gateway instances agree on it.
FULL_NOTICE = "$Vm2mailFullNotice"


def is_full(mailbox: Mailbox, counts: Counts) -> bool:
    return counts.total >= mailbox.max_messages


def notice(config: Config, mailbox: Mailbox, counts: Counts) -> bytes:
    """The plain-text notice e-mail (CRLF, RFC 5322); not a voicemail, so it never counts as one."""
    env = environment(config.templates_dir)
    context = {
        "mailbox_id": mailbox.id,
        "mailbox_name": mailbox.name,
        "total": counts.total,
        "max_messages": mailbox.max_messages,
    }

    def text(name: str) -> str:
        return env.get_template(
            language_template("email", mailbox.language, name, config.templates_dir)
        ).render(**context)

    message = EmailMessage(policy=SMTP)
    message["From"] = f"Voicemail <voicemail@{config.server.mail_domain}>"
    message["To"] = mailbox.email or mailbox.imap_user or f"mailbox {mailbox.id}"
    message["Subject"] = " ".join(text("mailbox-full.subject.j2").split())
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid("full", domain=config.server.mail_domain)
    message["X-Vm2mail-Mailbox"] = mailbox.id
    message["X-Vm2mail-Notice"] = "mailbox-full"
    message.set_content(text("mailbox-full.txt.j2"))
    return message.as_bytes()


async def update(
    conn: ImapConnection, config: Config, mailbox: Mailbox, counts: Counts, was_full: bool | None
) -> bool:
    """Append the notice when the mailbox became full, re-arm it when it is no longer; the new state.

    ``was_full`` is None at the first sync after a start: the folder's keyword decides then.
    """
    full = is_full(mailbox, counts)
    if full == was_full:
        return full
    current = await conn.uid_search("KEYWORD", FULL_NOTICE)
    if full and not current:
        await conn.append(mailbox.folder, notice(config, mailbox, counts), flags=(FULL_NOTICE,))
        log.info(
            "mailbox %s is full (%d of %d): owner notified", mailbox.id, counts.total, mailbox.max_messages
        )
    elif not full and current:
        uids = ",".join(str(uid) for uid in current)
        await conn.uid_store(uids, "-FLAGS.SILENT", (FULL_NOTICE,))
        log.info("mailbox %s has room again (%d of %d)", mailbox.id, counts.total, mailbox.max_messages)
    return full
