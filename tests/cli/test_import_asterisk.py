"""``vm2mail import-asterisk``: Asterisk messages land with dates, callers and heard state, exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tests.cli.conftest import VM2MAIL, cli
from tests.e2e.harness import Stack, parse
from tests.e2e.test_voicemail import messages
from tests.fixtures.twilio import make_wav

BASE = 1_700_000_000  # 2023-11-14T22:13:20Z


def _message(folder: Path, n: int, origtime: int, callerid: str, audio: str = ".wav") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"msg{n:04d}.txt").write_text(
        ";\n; Message Information file\n;\n[message]\norigmailbox=201\ncontext=default\nexten=201\n"
        f"callerid={callerid}\norigdate=Tue Nov 14 10:13:20 PM UTC 2023\norigtime={origtime}\n"
        f"category=\nmsg_id={origtime}-{n:08d}\nflag=\nduration=2\n",
        encoding="utf-8",
    )
    wav = folder / f"msg{n:04d}.wav"
    wav.write_bytes(make_wav(2.0))
    if audio == ".gsm":  # raw GSM 06.10, as Asterisk's `format=gsm` stores it
        subprocess.run(["sox", str(wav), str(wav.with_suffix(".gsm"))], check=True)
        wav.unlink()
    elif audio == ".WAV":  # GSM in a WAV container (Asterisk's wav49)
        subprocess.run(["sox", str(wav), "-e", "gsm-full-rate", str(wav.with_suffix(".WAV"))], check=True)
        wav.unlink()


def asterisk_spool(root: Path) -> Path:
    box = root / "default" / "201"
    _message(box / "INBOX", 0, BASE, '"Anna Alt" <+4930111>')
    _message(box / "INBOX", 1, BASE + 60, "<5551234>")
    _message(box / "Old", 0, BASE - 3600, '"Unknown" <Unknown>', ".WAV")
    _message(box / "Work", 0, BASE - 7200, '"Chef" <+4930222>', ".gsm")
    (box / "tmp").mkdir()  # Asterisk's scratch folder: never imported
    (box / "greet.wav").write_bytes(make_wav(0.5))
    return root / "default"


def _by_date(s: Stack) -> dict[datetime, tuple[frozenset[str], datetime, object]]:
    found = {}
    for fetched in messages(s, "201"):
        message = parse(fetched.raw)
        found[message["Date"].datetime] = (fetched.flags, fetched.internaldate, message)
    return found


def test_import_twice_delivers_each_message_once_with_date_caller_and_heard_state(
    stack: Callable[..., Stack], tmp_path: Path
) -> None:
    s = stack({"201": {}})
    spool_dir = asterisk_spool(tmp_path / "asterisk")
    first = cli("import-asterisk", "-c", str(s.config.source), str(spool_dir), "--map", "201=201")
    assert first.returncode == 0, first.stderr
    assert "4 imported" in first.stdout
    assert "4/4" in first.stderr  # the progress bar reached the end

    second = cli("import-asterisk", "-c", str(s.config.source), str(spool_dir), "--map", "201=201")
    assert second.returncode == 0, second.stderr
    assert "4 already imported" in second.stdout

    found = _by_date(s)
    assert len(messages(s, "201")) == 4
    at = {offset: datetime.fromtimestamp(BASE + offset, UTC) for offset in (0, 60, -3600, -7200)}
    assert set(found) == set(at.values())
    for offset, when in at.items():
        flags, internaldate, message = found[when]
        assert internaldate == when  # INTERNALDATE is the original date too
        heard = offset < 0  # Old and Work are heard, INBOX is new
        assert ("\\Seen" in flags) == heard, (offset, flags)
        assert message["X-Vm2mail-Duration"] == "2"  # type: ignore[index]
    assert found[at[0]][2]["X-Vm2mail-Caller"] == "+4930111"  # type: ignore[index]
    assert found[at[0]][2]["X-Vm2mail-Caller-Name"] == "Anna Alt"  # type: ignore[index]
    # A 7-digit local number without a country to read it in: no E.164 caller, still shown.
    assert found[at[60]][2]["X-Vm2mail-Caller-Name"] == "5551234"  # type: ignore[index]
    assert found[at[-3600]][2]["X-Vm2mail-Caller"] == "anonymous"  # type: ignore[index]
    assert found[at[-7200]][2]["X-Vm2mail-Caller-Name"] == "Chef"  # type: ignore[index]


def test_interrupted_import_resumes_without_duplicates(stack: Callable[..., Stack], tmp_path: Path) -> None:
    s = stack({"201": {}}, server={"workers": 2})
    root = tmp_path / "asterisk" / "default"
    for n in range(10):
        _message(root / "201" / ("INBOX" if n % 2 else "Old"), n, BASE + n * 60, f"<+49301{n:04d}>")
    args = [*VM2MAIL, "import-asterisk", "-c", str(s.config.source), str(root), "--map", "201=201"]
    with subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        progress = 0
        for line in proc.stderr:
            progress += line.startswith("[")
            if progress == 3:
                os.kill(proc.pid, signal.SIGKILL)  # no chance to clean up: jobs may be mid-APPEND
                break
        proc.stderr.read()
    assert proc.returncode == -signal.SIGKILL
    assert 3 <= len(messages(s, "201")) < 10

    resumed = cli("import-asterisk", "-c", str(s.config.source), str(root), "--map", "201=201")
    assert resumed.returncode == 0, resumed.stderr
    delivered = [parse(m.raw) for m in messages(s, "201")]
    assert len(delivered) == 10
    assert len({m["Message-ID"] for m in delivered}) == 10
    assert {m["X-Vm2mail-Caller"] for m in delivered} == {f"+49301{n:04d}" for n in range(10)}
    again = cli("import-asterisk", "-c", str(s.config.source), str(root), "--map", "201=201")
    assert "10 already imported" in again.stdout
    assert len(messages(s, "201")) == 10


def test_import_errors(stack: Callable[..., Stack], tmp_path: Path) -> None:
    s = stack({"201": {}})
    spool_dir = asterisk_spool(tmp_path / "asterisk")
    unknown = cli("import-asterisk", "-c", str(s.config.source), str(spool_dir), "--map", "201=999")
    assert unknown.returncode == 1 and "'999' is not in" in unknown.stderr
    malformed = cli("import-asterisk", "-c", str(s.config.source), str(spool_dir), "--map", "201")
    assert malformed.returncode == 1 and "ASTERISK_MAILBOX=VM2MAIL_MAILBOX" in malformed.stderr
    missing = cli("import-asterisk", "-c", str(s.config.source), str(tmp_path / "nope"), "--map", "201=201")
    assert missing.returncode == 1 and "not a directory" in missing.stderr
    assert cli("import-asterisk", "-c", str(s.config.source)).returncode == 2
    assert messages(s, "201") == []
