"""Real SMTP clients (smtplib, swaks) against the running ingress: sessions, policy, voicemails in Dovecot."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.harness import Stack, audio_part, decrypt, ffprobe, gateway_up, parse
from tests.fixtures.dovecot import MailClient
from tests.ops.test_metrics import Samples, scrape
from tests.smtp.conftest import (
    DOMAIN,
    PBX_PASSWORD,
    PBX_USER,
    asterisk_email,
    convert,
    generic_email,
    gsm_wav,
    wait_state,
    wav_bytes,
)
from vm2mail.smtp.handler import job_id_for

ASTERISK_ID = "<Asterisk-1-1763889342-201-4242@pbx.example.com>"


@dataclass
class Result:
    rcpt: list[tuple[int, bytes]]
    data: tuple[int, bytes] | None


def transaction(
    port: int,
    data: bytes,
    rcpts: list[str],
    *,
    ca_file: Path | None = None,
    auth: tuple[str, str] | None = None,
    sender: str = "asterisk@pbx.example.com",
) -> Result:
    """One SMTP transaction with smtplib; STARTTLS when ``ca_file`` is given (verifying the certificate)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("pbx.example.com")
        if ca_file is not None:
            client.starttls(context=ssl.create_default_context(cafile=str(ca_file)))
            client.ehlo("pbx.example.com")
        if auth is not None:
            client.login(*auth)
        code, text = client.mail(sender)
        assert code == 250, (code, text)
        replies = [client.rcpt(rcpt) for rcpt in rcpts]
        if any(code == 250 for code, _ in replies):
            return Result(replies, client.data(data))
        client.rset()
        return Result(replies, None)


async def send(port: int, data: bytes, rcpts: list[str] | None = None, **kwargs: Any) -> Result:
    return await asyncio.to_thread(transaction, port, data, rcpts or [f"201@{DOMAIN}"], **kwargs)


def voicemails(stack: Stack, box: str = "201") -> list[Any]:
    account = stack.accounts[box]
    return MailClient(stack.dovecot, account.user, account.password).messages("Voicemail")


def test_asterisk_voicemail_from_allowed_network_lands_once(
    smtp_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    stack = smtp_stack()
    raw = asterisk_email(wav_bytes(3.0))

    async def scenario() -> tuple[Result, Result, Samples, Samples]:
        async with gateway_up(stack.config) as gateway:
            _, before = await scrape(gateway.port)
            first = await send(gateway.smtp_port, raw)  # plain SMTP: 127.0.0.0/8 is an allowed network
            assert await wait_state(stack.spool, job_id_for(ASTERISK_ID, "201")) == "done"
            again = await send(gateway.smtp_port, raw)  # a PBX retrying after a lost 250
            _, after = await scrape(gateway.port)
            return first, again, before, after

    first, again, before, after = asyncio.run(scenario())
    # What an operator sees on /metrics: two replies timed, one accepted, one duplicate.
    replies = ("vm2mail_smtp_reply_seconds_count", ())
    assert after[replies] - before.get(replies, 0.0) == 2

    def result(name: str) -> float:
        key = ("vm2mail_smtp_messages_total", (("result", name),))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert (result("accepted"), result("duplicate")) == (1, 1)
    assert first.data is not None and first.data[0] == 250
    assert again.data is not None and again.data[0] == 250
    [stored] = voicemails(stack)
    outer = parse(stored.raw)
    assert outer["X-Vm2mail-Caller"] == "+4930123456"
    assert outer["Reply-To"].startswith("reply+") and outer["Reply-To"].endswith(f"@{DOMAIN}")
    key = stack.accounts["201"].key
    assert key is not None
    inner = decrypt(outer, key)
    assert inner["X-Vm2mail-Caller-Name"] == "Jörg Müller"  # from the ISO-8859-1 PBX header
    assert inner["Reply-To"] == outer["Reply-To"]
    assert inner["X-Vm2mail-Duration"] == "3"
    info = ffprobe(audio_part(inner), tmp_path)
    assert info["streams"][0]["codec_name"] == "mp3"
    assert abs(float(info["format"]["duration"]) - 3.0) < 0.3


def test_gsm_wav49_over_starttls_and_auth_with_swaks(
    smtp_stack: Callable[..., Stack], tmp_path: Path, dovecot: Any
) -> None:
    stack = smtp_stack(allowed_networks=[])
    wav49 = tmp_path / "msg0000.WAV"
    wav49.write_bytes(gsm_wav(tmp_path, wav_bytes(4.0)))

    async def scenario() -> tuple[int, str]:
        async with gateway_up(stack.config) as gateway:
            proc = await asyncio.create_subprocess_exec(
                "swaks", "--server", "127.0.0.1", "--port", str(gateway.smtp_port),
                "--to", f"anna@{DOMAIN}", "--from", "asterisk@pbx.example.com", "--ehlo", "pbx.example.com",
                "--tls", "--auth", "PLAIN", "--auth-user", PBX_USER, "--auth-password", PBX_PASSWORD,
                "--header", "Subject: [PBX]: New message 2 in mailbox 201",
                "--header", "Message-Id: <Asterisk-2-wav49@pbx.example.com>",
                "--header", "X-Asterisk-CallerID: 004930777666",
                "--body", "Dear Anna:\n\n\tyou were just left a 0:04 long message",
                "--attach-type", "audio/x-WAV", "--attach-name", "msg0000.WAV", "--attach", f"@{wav49}",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            out, _ = await proc.communicate()
            if proc.returncode == 0:
                job = job_id_for("<Asterisk-2-wav49@pbx.example.com>", "201")
                assert await wait_state(stack.spool, job) == "done"
            return proc.returncode or 0, out.decode(errors="replace")

    code, transcript = asyncio.run(scenario())
    assert code == 0, transcript
    assert " -> STARTTLS" in transcript
    assert "235 2.7.0 Authentication successful" in transcript
    [stored] = voicemails(stack)
    outer = parse(stored.raw)
    assert outer["X-Vm2mail-Caller"] == "+4930777666"  # 00 international prefix → E.164
    key = stack.accounts["201"].key
    assert key is not None
    info = ffprobe(audio_part(decrypt(outer, key)), tmp_path)
    assert abs(float(info["format"]["duration"]) - 4.0) < 0.3


def test_generic_ogg_opus_mail_with_client_pattern(
    smtp_stack: Callable[..., Stack], tmp_path: Path, dovecot: Any
) -> None:
    stack = smtp_stack(
        allowed_networks=[],
        clients=[
            {
                "user": PBX_USER,
                "caller_pattern": r"Voicemail from (\+\d+)",
                "duration_pattern": r"\((\d+:\d\d)\)",
            }
        ],
    )
    opus = convert(tmp_path, wav_bytes(5.0), ".ogg", "-c:a", "libopus", "-b:a", "24k")
    raw = generic_email([(opus, "voicemail.ogg", "audio/ogg")], message_id="<3cx-77@pbx.example.com>")

    async def scenario() -> Result:
        async with gateway_up(stack.config) as gateway:
            result = await send(
                gateway.smtp_port, raw, ca_file=dovecot.ca_file, auth=(PBX_USER, PBX_PASSWORD)
            )
            assert await wait_state(stack.spool, job_id_for("<3cx-77@pbx.example.com>", "201")) == "done"
            return result

    result = asyncio.run(scenario())
    assert result.data is not None and result.data[0] == 250
    [stored] = voicemails(stack)
    outer = parse(stored.raw)
    assert outer["X-Vm2mail-Caller"] == "+4930999888"
    key = stack.accounts["201"].key
    assert key is not None
    info = ffprobe(audio_part(decrypt(outer, key)), tmp_path)
    assert abs(float(info["format"]["duration"]) - 5.0) < 0.3


def test_auth_is_refused_before_starttls(smtp_stack: Callable[..., Stack]) -> None:
    stack = smtp_stack(allowed_networks=[])

    def session(port: int) -> tuple[bool, tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo("pbx.example.com")
            offered = client.has_extn("auth")
            return offered, client.docmd("AUTH", "PLAIN AHBieABwYngtc2VjcmV0LTAxMjM=")

    async def scenario() -> tuple[bool, tuple[int, bytes]]:
        async with gateway_up(stack.config) as gateway:
            return await asyncio.to_thread(session, gateway.smtp_port)

    offered, (code, text) = asyncio.run(scenario())
    assert not offered
    assert code == 538, text


def test_wrong_password_and_untrusted_client_are_refused(
    smtp_stack: Callable[..., Stack], dovecot: Any
) -> None:
    stack = smtp_stack(allowed_networks=["10.0.0.0/8"])
    raw = asterisk_email(wav_bytes(2.0))

    async def scenario() -> tuple[Result, Exception | None]:
        async with gateway_up(stack.config) as gateway:
            plain = await send(gateway.smtp_port, raw)
            try:
                await send(gateway.smtp_port, raw, ca_file=dovecot.ca_file, auth=(PBX_USER, "wrong"))
            except smtplib.SMTPAuthenticationError as exc:
                return plain, exc
            return plain, None

    plain, auth_error = asyncio.run(scenario())
    assert plain.rcpt[0][0] == 530 and plain.data is None
    assert isinstance(auth_error, smtplib.SMTPAuthenticationError) and auth_error.smtp_code == 535
    assert not list((stack.spool / "new").iterdir())


def test_relay_unknown_oversized_and_non_audio_mail_are_refused(
    smtp_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    stack = smtp_stack(max_message_bytes=200_000)
    wav = wav_bytes(2.0)
    too_big = asterisk_email(wav_bytes(20.0), message_id="<big@pbx>")
    no_audio = generic_email([], message_id="<text-only@pbx>")
    pdf = generic_email([(b"%PDF-1.4 not audio", "fax.pdf", "application/pdf")], message_id="<pdf@pbx>")
    broken = generic_email([(b"\xff\xfb" + b"\x00" * 4000, "vm.mp3", "audio/mpeg")], message_id="<bad@pbx>")

    async def scenario() -> list[Result]:
        async with gateway_up(stack.config) as gateway:
            port = gateway.smtp_port
            return [
                await send(port, asterisk_email(wav), ["someone@example.org", f"999@{DOMAIN}"]),
                await send(port, too_big),
                await send(port, no_audio),
                await send(port, pdf),
                await send(port, broken),
            ]

    relay, big, text_only, fax, bad_audio = asyncio.run(scenario())
    assert [code for code, _ in relay.rcpt] == [550, 550]
    assert b"relay" in relay.rcpt[0][1] and b"5.1.1" in relay.rcpt[1][1]
    assert big.data is not None and big.data[0] == 552
    for refused in (text_only, fax):
        assert refused.data is not None and refused.data[0] == 554
        assert b"no audio attachment" in refused.data[1]
    assert bad_audio.data is not None and bad_audio.data[0] == 554
    assert b"Unreadable audio" in bad_audio.data[1]
    assert not list((stack.spool / "new").iterdir()) and not list((stack.spool / "done").iterdir())
