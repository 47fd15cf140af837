"""Reading PBX voicemail e-mails (headers, bodies, admin patterns, audio checks) and cleaning reply text."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.smtp.conftest import asterisk_email, generic_email, gsm_wav, wav_bytes
from vm2mail.config.model import SmtpClientRule
from vm2mail.errors import AudioError
from vm2mail.smtp import pbx
from vm2mail.smtp.replies import ReplyRefused, reply_text

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def message(raw: bytes) -> pbx.Parsed:
    return pbx.parse_message(raw)


def test_asterisk_headers_body_and_date() -> None:
    vm = pbx.parse(message(asterisk_email(wav_bytes(1.0))), None, now=NOW)
    assert (vm.caller, vm.caller_name, vm.duration, vm.suffix) == ("+4930123456", "Jörg Müller", 3, ".wav")
    assert vm.started == datetime(2026, 11, 23, 9, 15, 42, tzinfo=UTC)
    assert vm.message_id == "<Asterisk-1-1763889342-201-4242@pbx.example.com>"


def test_caller_from_asterisk_body_when_headers_are_missing() -> None:
    raw = asterisk_email(wav_bytes(1.0)).replace(b"X-Asterisk-Caller", b"X-Other")
    vm = pbx.parse(message(raw), None, now=NOW)
    assert (vm.caller, vm.caller_name) == ("+4930123456", "Jörg Müller")


def test_freepbx_body_with_a_national_number_keeps_it_visible() -> None:
    text = 'Anna,\n\nThere is a new voicemail in mailbox 201:\n\n\tFrom:\t"Max" <030123456>\n'
    text += "\tLength:\t0:12 seconds\n"
    vm = pbx.parse(
        message(generic_email([(wav_bytes(1.0), "msg0001.wav", "audio/x-wav")], text=text)), None, now=NOW
    )
    assert vm.caller is None  # not E.164: no callback link, no SMS reply
    assert vm.caller_name == "Max (030123456)"
    assert vm.duration == 12


def test_client_rule_patterns_by_network_and_user() -> None:
    rules = (
        SmtpClientRule(network="10.1.0.0/16", caller_pattern=r"Anrufer: (?P<caller>\S+)"),
        SmtpClientRule(user="cisco", caller_pattern=r"from (\+\d+)", caller_name_pattern=r"name=(\w+)"),
    )
    assert pbx.rule_for(rules, "10.1.2.3", None) is rules[0]
    assert pbx.rule_for(rules, "192.0.2.1", "cisco") is rules[1]
    assert pbx.rule_for(rules, "192.0.2.1", None) is None
    raw = generic_email([(b"RIFF", "a.wav", "audio/wav")], subject="VM", text="Anrufer: +41441234567\n")
    vm = pbx.parse(message(raw), rules[0], now=NOW)
    assert vm.caller == "+41441234567"


def test_mail_without_exactly_one_audio_attachment_is_not_a_voicemail() -> None:
    with pytest.raises(pbx.NotVoicemail, match="no audio attachment"):
        pbx.parse(message(generic_email([])), None, now=NOW)
    two = generic_email([(b"RIFF1", "a.wav", "audio/wav"), (b"RIFF2", "b.mp3", "audio/mpeg")])
    with pytest.raises(pbx.NotVoicemail, match="2 audio attachments"):
        pbx.parse(message(two), None, now=NOW)


def test_audio_checks(tmp_path: Path) -> None:
    async def checks() -> tuple[float, float, str]:
        pcm = await pbx.check_audio(wav_bytes(2.0), ".wav", tmp_path)
        gsm = await pbx.check_audio(gsm_wav(tmp_path, wav_bytes(2.0)), ".wav", tmp_path)
        try:
            await pbx.check_audio(b"ID3 this is not audio at all" * 10, ".mp3", tmp_path)
        except AudioError as exc:
            return pcm, gsm, str(exc)
        return pcm, gsm, ""

    pcm, gsm, error = asyncio.run(checks())
    assert pcm == pytest.approx(2.0)
    assert gsm == pytest.approx(2.0, abs=0.05)
    assert "cannot be decoded" in error
    assert list(tmp_path.glob("probe-*")) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Yes, see you at 3.\n\n-----Original Message-----\nFrom: x\n> old", "Yes, see you at 3."),
        ("Gerne!\n\nAm 23.11.2026 um 10:15 schrieb Voicemail <v@x>:\n> alt", "Gerne!"),
        ("> quoted first\nInline answer\n> more quote\nSecond line", "Inline answer\nSecond line"),
        ("a" * 500, "a" * 320),
    ],
)
def test_reply_text_is_cleaned(body: str, expected: str) -> None:
    msg = EmailMessage()
    msg.set_content(body)
    assert reply_text(msg, 320) == expected


def test_empty_reply_is_refused() -> None:
    msg = EmailMessage()
    msg.set_content("> only the quote\n-- \nsignature")
    with pytest.raises(ReplyRefused, match="no text of its own"):
        reply_text(msg, 320)


def test_big_attachments_are_lifted_out_before_parsing_and_decoded_intact() -> None:
    wav = wav_bytes(3.0)
    parsed = pbx.parse_message(asterisk_email(wav))
    assert len(parsed.lifted) == 1  # the WAV's base64 never went through the email package
    [audio] = [part for part in parsed.message.walk() if part.get_content_maintype() == "audio"]
    assert parsed.payload(audio) == wav
    assert pbx.parse(parsed, None, now=NOW).duration == 3  # the text part still parses normally
