"""Reload: a new YAML takes effect for new calls and jobs; calls in flight finish; bad files are refused."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest
import yaml

from tests.e2e.harness import Stack, free_port, running, sample
from tests.fixtures.dovecot import MailClient
from tests.ops.calls import call_params, new_call_sid, post
from vm2mail.devstack.fake_twilio import rfc2822

ACCOUNT = tuple[str, str]


def edit_yaml(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def add_mailbox(data: dict[str, Any], box: str, number: str, account: ACCOUNT) -> None:
    data["mailboxes"][box] = {
        "name": f"User {box}",
        "email": account[0],
        "imap_user": account[0],
        "imap_password": account[1],
        "numbers": [number],
    }


def folder(stack: Stack, user: str, password: str) -> list[Any]:
    client = MailClient(stack.dovecot, user, password)
    return client.messages("Voicemail") if "Voicemail" in client.list_folders() else []


def test_reload_during_a_call_keeps_the_call_and_serves_new_calls_with_the_new_config(
    stack: Callable[..., Stack], imap_account: Callable[[], ACCOUNT]
) -> None:
    s = stack({"201": {"encrypted": True, "forward_to": "+15550009999"}})
    path = s.config.source
    box = s.config.mailboxes["201"]
    newcomer = imap_account()

    async def scenario() -> tuple[str, list[str]]:
        async with running(s) as gateway:
            port, old = gateway.port, gateway.config
            # A call arrives and rings the forward number with the old ring time ...
            sid = new_call_sid()
            params = call_params(old, sid, box.numbers[0])
            voice = await post(port, old, "/twilio/voice", params)
            dial = voice.find("Dial")
            assert dial.get("timeout") == "15"
            # ... nobody answers: the greeting (old language) and <Record> are playing when the admin
            # changes the language and ring time, adds mailbox 202, and reloads.
            dial_done = await post(
                port, old, dial.get("action") or "", {**params, "DialCallStatus": "no-answer"}
            )
            assert dial_done.find("Say").get("language") == "en-US"
            record = dial_done.find("Record")

            def change(data: dict[str, Any]) -> None:
                data["defaults"]["language"] = "de-DE"
                data["defaults"]["ring_seconds"] = 25
                add_mailbox(data, "202", "+15550002099", newcomer)

            edit_yaml(path, change)
            assert await gateway.reload(path) == []
            assert gateway.config is not old and "202" in gateway.config.mailboxes

            # The call in flight ends: its recording callback is accepted and the voicemail lands.
            recording = s.fake.add_recording(sample(), call_sid=sid)
            callback = await post(
                port,
                old,
                record.get("recordingStatusCallback") or "",
                {
                    "AccountSid": old.twilio.account_sid,
                    "CallSid": sid,
                    "RecordingSid": recording.sid,
                    "RecordingUrl": s.fake.recording_url(recording),
                    "RecordingStatus": "completed",
                    "RecordingDuration": str(recording.duration),
                    "RecordingChannels": "1",
                    "RecordingStartTime": rfc2822(datetime.now(UTC)),
                    "RecordingSource": "RecordVerb",
                    "ErrorCode": "0",
                },
            )
            assert callback.status == 204
            assert await s.wait_job(recording.sid) == "done"

            # New calls use the new configuration: ring time and language ...
            sid2 = new_call_sid()
            params2 = call_params(old, sid2, box.numbers[0])
            dial2 = (await post(port, old, "/twilio/voice", params2)).find("Dial")
            assert dial2.get("timeout") == "25"
            greeting = await post(port, old, dial2.get("action") or "", {**params2, "DialCallStatus": "busy"})
            assert greeting.find("Say").get("language") == "de-DE"
            # ... and the new mailbox answers and receives its voicemail.
            trace = await s.call(gateway, to="+15550002099")
            assert trace.recording is not None
            assert await s.wait_job(trace.recording.sid) == "done"
            return recording.sid, [trace.recording.sid]

    first, [second] = asyncio.run(scenario())
    account = s.accounts["201"]
    [landed] = folder(s, account.user, account.password)
    assert first in landed.raw.decode(errors="replace")
    [other] = folder(s, *newcomer)
    assert second in other.raw.decode(errors="replace")


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("defaults:\n  ring_seconds: -3\n", "defaults.ring_seconds"),
        ("mailboxes: {'201': {numbers: [oops]}}\n", "mailboxes.201"),
        ("server: [unclosed\n", "vm2mail-0.yaml:"),
    ],
    ids=["bad-value", "bad-mailbox", "not-yaml"],
)
def test_a_bad_file_is_refused_and_the_running_configuration_stays(
    stack: Callable[..., Stack], caplog: pytest.LogCaptureFixture, yaml_text: str, expected: str
) -> None:
    s = stack({"201": {"forward_to": "+15550009999"}})
    path = s.config.source

    async def scenario() -> tuple[list[str], bool, str | None]:
        async with running(s) as gateway:
            before = gateway.config
            data = yaml.safe_load(path.read_text())
            if yaml_text.startswith("server: ["):
                path.write_text(yaml_text)
            else:
                fragment = yaml.safe_load(yaml_text)
                for section, values in fragment.items():
                    for key, value in values.items():
                        data[section][key] = value
                path.write_text(yaml.safe_dump(data, sort_keys=False))
            with caplog.at_level(logging.ERROR, logger="vm2mail.ops"):
                problems = await gateway.reload(path)
            sid = new_call_sid()
            params = call_params(before, sid, before.mailboxes["201"].numbers[0])
            dial = (await post(gateway.port, before, "/twilio/voice", params)).find("Dial")
            return problems, gateway.config is before, dial.get("timeout")

    problems, unchanged, timeout = asyncio.run(scenario())
    assert problems and any(expected in p for p in problems)
    assert all(p.startswith(str(path)) or p.startswith(path.name) for p in problems), problems
    assert unchanged and timeout == "15"  # calls still get the old, running configuration
    logged = [r.getMessage() for r in caplog.records if r.name == "vm2mail.ops"]
    assert any("reload refused" in m and expected in m for m in logged)


def test_settings_bound_at_start_stay_until_restart_with_a_warning(
    stack: Callable[..., Stack], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    s = stack({"201": {}})
    path = s.config.source

    async def scenario() -> tuple[list[str], Any]:
        async with running(s) as gateway:

            def change(data: dict[str, Any]) -> None:
                data["server"]["listen"] = "127.0.0.1:1"
                data["server"]["spool_dir"] = str(tmp_path / "elsewhere")
                data["mailboxes"]["201"]["name"] = "Renamed"

            edit_yaml(path, change)
            with caplog.at_level(logging.WARNING, logger="vm2mail.ops"):
                problems = await gateway.reload(path)
            return problems, gateway.config

    problems, config = asyncio.run(scenario())
    assert problems == []
    assert config.mailboxes["201"].name == "Renamed"  # applied
    assert config.server.spool_dir == s.config.server.spool_dir  # kept until restart
    assert config.server.listen_port == s.config.server.listen_port
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "server.listen: the change needs a restart" in warnings
    assert "server.spool_dir: the change needs a restart" in warnings


def _wait_healthy(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            with urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"gateway not healthy: {log.read_text()}")


def test_sighup_reloads_a_running_vm2mail_serve(
    stack: Callable[..., Stack], imap_account: Callable[[], ACCOUNT], tmp_path: Path
) -> None:
    port = free_port()
    s = stack({"201": {}}, server={"listen": f"127.0.0.1:{port}", "log_format": "json"})
    path = s.config.source
    pid_file = s.config.server.spool_dir / "vm2mail.pid"
    log = tmp_path / "serve.log"
    newcomer = imap_account()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "vm2mail", "serve", "-c", str(path)],
            stdout=out,
            stderr=out,
            cwd=Path(__file__).resolve().parents[2],
        )
    try:
        _wait_healthy(port, process, log)
        assert int(pid_file.read_text()) == process.pid

        async def voice(called: str) -> int:
            return (
                await post(port, s.config, "/twilio/voice", call_params(s.config, new_call_sid(), called))
            ).status

        async def answers(called: str, want: str, timeout: float = 20) -> str:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                step = await post(
                    port, s.config, "/twilio/voice", call_params(s.config, new_call_sid(), called)
                )
                if want in step.body:
                    return step.body
                await asyncio.sleep(0.1)
            raise AssertionError(f"{called}: no {want!r}; log:\n{log.read_text()}")

        assert "<Record" not in asyncio.run(answers("+15550002099", "<Hangup"))  # no such mailbox yet
        edit_yaml(path, lambda data: add_mailbox(data, "202", "+15550002099", newcomer))
        os.kill(int(pid_file.read_text()), signal.SIGHUP)
        assert "<Record" in asyncio.run(answers("+15550002099", "<Record"))

        path.write_text(path.read_text().replace("mailboxes:", "mailboxes:\n  bogus_key: 1\n  ", 1))
        size = log.stat().st_size
        os.kill(process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "reload refused" not in log.read_bytes()[size:].decode(errors="replace"):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert "<Record" in asyncio.run(answers("+15550002099", "<Record"))  # still the good config
        assert asyncio.run(voice("+15550002001")) == 200
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    assert code == 0, log.read_text()
    assert not pid_file.exists()
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    refused = [e for e in entries if "reload refused" in e["msg"]]
    assert refused and refused[0]["level"] == "error" and path.name in refused[0]["msg"]
    assert any(e.get("call_id", "").startswith("CA") and e["logger"].endswith("webhooks") for e in entries)


def test_an_unusable_key_does_not_stop_a_reload_it_is_logged(
    stack: Callable[..., Stack], caplog: pytest.LogCaptureFixture
) -> None:
    """A key that expired or vanished must not freeze the configuration: its mail waits, the rest goes on."""
    s = stack({"201": {"encrypted": True, "forward_to": "+15550009999"}})
    path = s.config.source
    missing = "0123456789ABCDEF0123456789ABCDEF01234567"

    async def scenario() -> tuple[list[str], int]:
        async with running(s) as gateway:
            edit_yaml(path, lambda d: d["mailboxes"]["201"].update(gpg_recipients=[missing], ring_seconds=9))
            with caplog.at_level(logging.WARNING, logger="vm2mail.app"):
                problems = await gateway.reload(path)
            return problems, gateway.config.mailboxes["201"].ring_seconds

    problems, ring = asyncio.run(scenario())
    assert problems == [] and ring == 9
    assert any(missing in r.getMessage() and "wait in the spool" in r.getMessage() for r in caplog.records)
