"""The command surface: help and exit codes of every command, ``hash-pin`` and ``reload`` end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.cli.conftest import VM2MAIL, cli
from tests.e2e.harness import Stack
from tests.fixtures.config import base_data, write_config
from vm2mail.cli import main
from vm2mail.pinhash import verify_pin

COMMANDS = [
    ["serve"],
    ["check-config"],
    ["simulate-call"],
    ["status"],
    ["spool", "list"],
    ["spool", "show"],
    ["spool", "retry"],
    ["spool", "discard"],
    ["hash-pin"],
    ["keys", "list"],
    ["keys", "import"],
    ["keys", "check"],
    ["reconcile"],
    ["import-asterisk"],
    ["reload"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_and_config_option(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "-c CONFIG, --config CONFIG" in text
    assert len(text.split("\n\n")[1].strip()) > 10  # a description, not just the usage line


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    config = str(write_config(tmp_path / "vm.yaml", base_data(tmp_path)))
    for args in (
        [],
        ["no-such-command", "-c", config],
        ["status"],  # -c missing
        ["spool", "-c", config],  # subcommand missing
        ["spool", "frobnicate", "-c", config],
        ["keys", "check", "-c", config, "--bogus"],
        ["hash-pin", "1234"],  # a PIN on the command line would land in shell history and ps
    ):
        assert cli(*args).returncode == 2, args


def test_bad_config_exits_1_naming_file_line_and_key(tmp_path: Path) -> None:
    data = base_data(tmp_path)
    data["mailboxes"]["201"]["ring_secs"] = 5
    path = write_config(tmp_path / "vm.yaml", data)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "ring_secs" in text)
    for args in (["status"], ["spool", "list"], ["keys", "check"], ["reconcile"], ["reload"]):
        result = cli(*args, "-c", str(path))
        assert result.returncode == 1, args
        assert f"vm.yaml:{line}: mailboxes.201.ring_secs: unknown key" in result.stderr, args
    missing = cli("status", "-c", str(tmp_path / "absent.yaml"))
    assert missing.returncode == 1 and "absent.yaml: cannot read" in missing.stderr


def test_hash_pin_from_stdin_verifies_and_never_echoes() -> None:
    result = cli("hash-pin", input="4711\n")
    assert result.returncode == 0, result.stderr
    hashed = result.stdout.strip()
    assert hashed.startswith("scrypt$") and verify_pin("4711", hashed) and not verify_pin("4712", hashed)
    assert "4711" not in result.stdout + result.stderr
    assert cli("hash-pin", input="4711\n").stdout.strip() != hashed  # salted
    for bad in ("12\n", "abcd\n", "\n"):
        refused = cli("hash-pin", input=bad)
        assert refused.returncode == 1 and "4 to 12 digits" in refused.stderr


def test_reload_signals_the_running_gateway(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {}})
    config = s.config.source
    pid_file = s.spool / "vm2mail.pid"
    assert "no running gateway" in cli("reload", "-c", str(config)).stderr

    log = config.parent / "serve.log"
    with (
        log.open("w") as out,
        subprocess.Popen([*VM2MAIL, "serve", "-c", str(config)], stderr=out) as gateway,
    ):
        try:
            deadline = time.monotonic() + 30
            while not pid_file.exists() and time.monotonic() < deadline and gateway.poll() is None:
                time.sleep(0.1)
            assert pid_file.read_text().strip() == str(gateway.pid), log.read_text()

            # A broken file is refused before anything is signalled; the gateway keeps running.
            good = config.read_text()
            config.write_text(good.replace("ring_seconds: 15", "ring_seconds: -1"))
            refused = cli("reload", "-c", str(config))
            assert refused.returncode == 1 and "ring_seconds" in refused.stderr
            assert "reloading" not in log.read_text()

            data = yaml.safe_load(good)
            data["mailboxes"]["201"]["name"] = "Renamed"
            config.write_text(yaml.safe_dump(data, sort_keys=False))
            result = cli("reload", "-c", str(config))
            assert result.returncode == 0, result.stderr
            assert f"sent SIGHUP to the gateway (pid {gateway.pid})" in result.stdout
            while "reload" not in log.read_text().lower() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "SIGHUP" in log.read_text()
            assert gateway.poll() is None  # reloaded, not killed
        finally:
            os.kill(gateway.pid, signal.SIGTERM)
            gateway.wait(30)
    assert not pid_file.exists()  # removed at a clean stop
