"""The small parsers behind the commands: Asterisk caller IDs and message files, --since, the PIN prompt."""

from __future__ import annotations

import os
import pty
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli.conftest import VM2MAIL
from vm2mail.config import Config
from vm2mail.errors import Vm2mailError
from vm2mail.migrate.asterisk import parse_callerid, read_message, scan, to_job
from vm2mail.pinhash import verify_pin
from vm2mail.pipeline.reconcile import parse_since


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('"Anna Alt" <+4930111>', ("+4930111", "Anna Alt")),
        ("<5551234>", ("5551234", None)),
        ("5551234", ("5551234", None)),
        ('"5551234" <5551234>', ("5551234", None)),
        ('"Unknown" <Unknown>', (None, None)),
        ("", (None, None)),
        ('"Private" <anonymous>', (None, None)),
    ],
)
def test_parse_callerid(raw: str, expected: tuple[str | None, str | None]) -> None:
    assert parse_callerid(raw) == expected


def test_parse_since() -> None:
    assert parse_since("24h") == timedelta(hours=24)
    assert parse_since("30m") == timedelta(minutes=30)
    assert parse_since("7d") == timedelta(days=7)
    assert parse_since("2w") == timedelta(weeks=2)
    for bad in ("", "0h", "24", "1y", "-3d", "yesterday"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_since(bad)


def test_message_file_problems_are_named(tmp_path: Path) -> None:
    folder = tmp_path / "201" / "INBOX"
    folder.mkdir(parents=True)
    (folder / "msg0000.txt").write_text("[message]\ncallerid=<1>\norigtime=1700000000\n")
    with pytest.raises(Vm2mailError, match="no audio file"):
        read_message("201", "INBOX", folder / "msg0000.txt")
    (folder / "msg0001.txt").write_text("[message]\ncallerid=<1>\n")
    (folder / "msg0001.wav").write_bytes(b"RIFF")
    with pytest.raises(Vm2mailError, match="no origtime"):
        read_message("201", "INBOX", folder / "msg0001.txt")
    (folder / "msg0002.txt").write_text("garbage without a section\n")
    messages, notes = scan(tmp_path, {"201": "201", "305": "305"})
    assert messages == []
    assert any("msg0000.txt: no audio file" in n for n in notes)
    assert any("no such Asterisk mailbox directory" in n for n in notes)
    assert any("msg0002.txt" in n for n in notes)


def test_job_identity_is_deterministic(tmp_path: Path, make_config: Callable[..., Config]) -> None:
    folder = tmp_path / "201" / "Old"
    folder.mkdir(parents=True)
    (folder / "msg0007.txt").write_text('[message]\ncallerid="A" <+4930>\norigtime=1700000000\nduration=9\n')
    (folder / "msg0007.gsm").write_bytes(b"\xd0" * 33)
    config = make_config()
    message = read_message("201", "Old", folder / "msg0007.txt")
    first, second = (to_job(config, config.mailboxes["201"], message) for _ in range(2))
    assert first.id == second.id == "asterisk-201-201-Old-msg0007-1700000000"
    assert first.message_id == second.message_id == "<asterisk-201-Old-msg0007-1700000000@vm.example.com>"
    assert first.seen and first.started == datetime.fromtimestamp(1700000000, UTC)
    assert first.recording_duration == 9 and first.call.caller == "+4930" and first.call.caller_name == "A"


def _wait_for(stream: int, prompt: bytes) -> None:
    seen = b""
    while not seen.endswith(prompt):
        chunk = os.read(stream, 64)
        assert chunk, seen
        seen += chunk


def test_hash_pin_asks_twice_on_a_terminal() -> None:
    for answers, code in ((("2468", "2468"), 0), (("2468", "1357"), 1)):
        controller, terminal = pty.openpty()
        with subprocess.Popen(
            [*VM2MAIL, "hash-pin"],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # no controlling terminal: getpass reads the pty on stdin
        ) as proc:
            os.close(terminal)
            assert proc.stderr is not None and proc.stdout is not None
            # getpass flushes pending input when it turns echo off (TCSAFLUSH): answer each prompt.
            for answer, prompt in zip(answers, (b"PIN: ", b"PIN again: "), strict=True):
                _wait_for(proc.stderr.fileno(), prompt)
                os.write(controller, f"{answer}\n".encode())
            out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
            proc.wait(60)
        os.close(controller)
        assert proc.returncode == code, err
        if code == 0:
            assert verify_pin("2468", out.strip())
        else:
            assert "differ" in err and out == ""
