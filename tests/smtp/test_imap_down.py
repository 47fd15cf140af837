"""The SMTP ingress answers 250 while IMAP hangs; the voicemail lands once the server answers again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tests.e2e.harness import Stack, gateway_up
from tests.fixtures.dovecot import MailClient
from tests.fixtures.faulty_imap import HANG, PASS, FaultyImap, behind
from tests.smtp.conftest import DOMAIN, asterisk_email, wait_state, wav_bytes
from tests.smtp.test_ingress import ASTERISK_ID, transaction
from vm2mail.smtp.handler import job_id_for

BOUND = 3.0  # generous: the 250 waits for the spool's fsync only


def test_250_while_imap_hangs_and_delivery_after_it_recovers(
    smtp_stack: Callable[..., Stack],
    faulty_imap: FaultyImap,
    mail_client: Callable[[str, str], MailClient],
) -> None:
    s = smtp_stack(boxes={"201": {}})
    behind(s, faulty_imap)
    account = s.accounts["201"]

    async def scenario() -> str:
        async with gateway_up(s.config) as gateway:
            faulty_imap.mode = HANG
            started = time.monotonic()
            result = await asyncio.to_thread(
                transaction, gateway.smtp_port, asterisk_email(wav_bytes()), [f"201@{DOMAIN}"]
            )
            elapsed = time.monotonic() - started
            assert result.data is not None and result.data[0] == 250, result
            assert elapsed < BOUND, elapsed
            job_id = job_id_for(ASTERISK_ID, "201")
            await asyncio.sleep(1)
            assert not (s.spool / "done" / f"{job_id}.json").exists()
            faulty_imap.mode = PASS
            return await wait_state(s.spool, job_id, timeout=90)

    assert asyncio.run(scenario()) == "done"
    assert len(mail_client(account.user, account.password).messages("Voicemail")) == 1
