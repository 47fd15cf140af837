"""E-mail replies to a voicemail's Reply-To become one SMS to the caller, and only from the owner."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from tests.e2e.harness import Stack, parse, running
from tests.fixtures.dovecot import MailClient
from tests.smtp.conftest import PBX_PASSWORD, PBX_USER, SMS_FROM, asterisk_email, wait_state, wav_bytes
from tests.smtp.test_ingress import ASTERISK_ID, Result, send
from vm2mail.config import Config
from vm2mail.errors import TelephonyError
from vm2mail.smtp.handler import job_id_for
from vm2mail.smtp.replies import EmailReplies, ReplyRefused, make_token, verify_token

QUOTED_REPLY = (
    "Hi Jörg, I can call you back at 3 pm.\r\n\r\nAnna\r\n-- \r\nAnna Schmidt, Sales\r\n+49 30 555 201\r\n"
)
CLEANED = "Hi Jörg, I can call you back at 3 pm.\n\nAnna"


def reply(
    to: str, sender: str, *, text: str = QUOTED_REPLY, html: bool = False, message_id: str = "<r1@mail>"
) -> bytes:
    """A mail client's reply: new text, then the quoted voicemail, as text/plain (and optionally HTML)."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = f"Anna Schmidt <{sender}>"
    msg["To"] = to
    msg["Subject"] = "Re: Voicemail from Jörg Müller"
    msg["Message-ID"] = message_id
    msg["In-Reply-To"] = "<smtp-x@vm.example.com>"
    quoted = (
        "On Mon, 23 Nov 2026 at 10:15, Jörg Müller <voicemail@vm.example.com>\r\n"
        "wrote:\r\n"
        "> You have a voicemail\r\n"
    )
    if html:
        msg.set_content("<p>Call you back</p><blockquote>You have a voicemail</blockquote>", subtype="html")
    else:
        msg.set_content(text + "\r\n" + quoted)
    return msg.as_bytes()


def test_owner_reply_becomes_one_sms_and_others_are_refused(smtp_stack: Callable[..., Stack]) -> None:
    # No allowed networks: replies arrive from the owner's mail provider, which has no credentials here.
    stack = smtp_stack(allowed_networks=[])
    owner = stack.accounts["201"].user

    async def scenario() -> dict[str, Result]:
        async with running(stack) as gateway:
            port = gateway.smtp_port
            # The voicemail itself comes from the PBX, authenticated.
            ca = stack.dovecot.ca_file
            await send(port, asterisk_email(wav_bytes(2.0)), ca_file=ca, auth=(PBX_USER, PBX_PASSWORD))
            assert await wait_state(stack.spool, job_id_for(ASTERISK_ID, "201")) == "done"
            account = stack.accounts["201"]
            [stored] = await asyncio.to_thread(
                MailClient(stack.dovecot, account.user, account.password).messages, "Voicemail"
            )
            reply_to = str(parse(stored.raw)["Reply-To"])
            local, domain = reply_to.split("@")
            forged = f"{local[:-2]}{'b' if local[-2] != 'b' else 'c'}{local[-1]}@{domain}"
            expired_token = make_token(stack.config, "201", "+4930123456", now=time.time() - 40 * 86400)
            return {
                "first": await send(port, reply(reply_to, owner), [reply_to], sender=owner),
                "again": await send(port, reply(reply_to, owner), [reply_to], sender=owner),
                "stranger": await send(
                    port, reply(reply_to, "mallory@example.org", message_id="<r2@mail>"), [reply_to]
                ),
                "html": await send(
                    port, reply(reply_to, owner, html=True, message_id="<r3@mail>"), [reply_to]
                ),
                "forged": await send(port, reply(forged, owner), [forged]),
                "expired": await send(
                    port, reply(f"reply+{expired_token}@{domain}", owner), [f"reply+{expired_token}@{domain}"]
                ),
                "withheld": await send(
                    port, reply("voicemail@vm.example.com", owner), ["voicemail@vm.example.com"]
                ),
            }

    results = asyncio.run(scenario())
    assert results["first"].data is not None and results["first"].data[0] == 250
    assert results["again"].data is not None and results["again"].data[0] == 250  # same Message-ID
    for name in ("stranger", "html"):
        refused = results[name].data
        assert refused is not None and refused[0] == 550, (name, refused)
    assert b"owner" in results["stranger"].data[1]  # type: ignore[index]
    assert b"plain text" in results["html"].data[1]  # type: ignore[index]
    assert results["forged"].rcpt[0][0] == 550 and b"not valid" in results["forged"].rcpt[0][1]
    assert results["expired"].rcpt[0][0] == 550 and b"expired" in results["expired"].rcpt[0][1]
    assert results["withheld"].rcpt[0][0] == 550 and b"withheld" in results["withheld"].rcpt[0][1]
    assert len(stack.fake.messages) == 1
    [sms] = stack.fake.messages
    assert sms["To"] == "+4930123456" and sms["From"] == SMS_FROM
    assert sms["Body"] == CLEANED


# -- without servers: the token and the refusal paths after Twilio ------------------------------------
def test_token_binds_mailbox_caller_and_expiry(smtp_stack: Callable[..., Stack]) -> None:
    config = smtp_stack().config
    token = make_token(config, "201", "+4930123456")
    assert len("reply+" + token) <= 64  # RFC 5321 §4.5.3.1.1 local-part limit
    target = verify_token(config, token.upper())  # mail systems may change the case of local parts
    assert (target.mailbox.id, target.caller) == ("201", "+4930123456")
    # Reply-To is an outer header the IMAP server reads: the caller's number must not be in it.
    raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8))
    assert (4930123456).to_bytes(7, "big") not in raw and b"4930123456" not in raw
    old = make_token(config, "201", "+4930123456", now=time.time() - 31 * 86400)
    for bad, why in ((old, "expired"), (token[:-1], "not valid"), ("x" * 30, "not valid")):
        try:
            verify_token(config, bad)
        except ReplyRefused as refused:
            assert why in refused.reply and refused.reply.startswith("550")
        else:
            raise AssertionError(f"{bad} accepted")


def _sender(config: Config, tmp_path: Path, error: TelephonyError | None, sent: list[str]) -> EmailReplies:
    async def send_sms(sender: str, to: str, body: str) -> str:
        if error is not None:
            raise error
        sent.append(body)
        return "SM" + "0" * 32

    return EmailReplies(config=lambda: config, send_sms=send_sms, root=tmp_path / "replies")


def test_twilio_refusal_bounces_and_outage_defers(smtp_stack: Callable[..., Stack], tmp_path: Path) -> None:
    stack = smtp_stack()
    config = stack.config
    owner = stack.accounts["201"].user
    target = verify_token(config, make_token(config, "201", "+4930123456"))
    message = parse(reply("x@y", owner))
    sent: list[str] = []

    async def scenario() -> tuple[str, str, str]:
        landline = _sender(config, tmp_path, TelephonyError("code 21614", temporary=False), sent)
        try:
            await landline.handle(target, message, b"")
        except ReplyRefused as refused:
            bounce = refused.reply
        outage = await _sender(config, tmp_path, TelephonyError("HTTP 503", temporary=True), sent).handle(
            target, message, b""
        )
        # Neither attempt left a marker behind: the retry after the outage is sent.
        retried = await _sender(config, tmp_path, None, sent).handle(target, message, b"")
        return bounce, outage, retried

    bounce, outage, retried = asyncio.run(scenario())
    assert bounce.startswith("550") and "cannot receive SMS" in bounce
    assert outage.startswith("451")
    assert retried.startswith("250") and sent == [CLEANED]
