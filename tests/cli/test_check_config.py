"""``vm2mail check-config`` as an admin runs it: the routing table, or each problem with file and line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.fixtures.config import base_data, merge, write_config
from tests.fixtures.gpg import GpgKeys


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vm2mail", *args], capture_output=True, text=True, check=False
    )


def test_check_config_prints_routing_table(tmp_path: Path, gpg_keys: GpgKeys) -> None:
    anna = gpg_keys("Anna")
    data = merge(
        base_data(tmp_path),
        {
            "gpg": {"home": str(gpg_keys.home)},
            "mailboxes": {
                "201": {"gpg_recipients": [anna.fingerprint]},
                "202": {
                    "name": "Bob",
                    "imap_user": "bob",
                    "imap_password": "pw",
                    "numbers": ["+15550002002"],
                },
                "300": {"name": "Sales", "numbers": ["+15550003000"], "members": ["201", "202"]},
            },
        },
    )
    result = run("check-config", "-c", str(write_config(tmp_path / "vm.yaml", data)))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "NUMBER" in lines[1] and "ENCRYPTION" in lines[1]
    anna_row = next(line for line in lines if line.startswith("+15550002001"))
    assert "201 Anna Schmidt" in anna_row and "+15550009999" in anna_row and "15s" in anna_row
    assert anna.fingerprint[-16:] in anna_row
    bob_row = next(line for line in lines if line.startswith("+15550002002"))
    assert "voicemail directly" in bob_row and "none" in bob_row
    sales_row = next(line for line in lines if line.startswith("+15550003000"))
    assert "group: 201, 202" in sales_row


def test_check_config_reports_problems_and_exits_1(tmp_path: Path, gpg_keys: GpgKeys) -> None:
    stranger = gpg_keys("Stranger", import_to_gateway=False)
    data = merge(
        base_data(tmp_path),
        {
            "gpg": {"home": str(gpg_keys.home)},
            "mailboxes": {"201": {"gpg_recipients": [stranger.fingerprint]}},
        },
    )
    path = write_config(tmp_path / "vm.yaml", data)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if stranger.fingerprint in text)
    problem = f"vm.yaml:{line}: mailboxes.201.gpg_recipients[0]: key {stranger.fingerprint}: not in keyring"
    # serve runs with an unusable key (that mailbox's voicemails wait in the spool): so does check-config,
    # which the systemd unit runs before every start; --strict makes it an error.
    result = run("check-config", "--offline", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert f"WARNING: {problem}" in result.stderr.splitlines()
    assert "OK, 1 mailboxes" in result.stdout
    result = run("check-config", "--strict", "--offline", "-c", str(path))
    assert result.returncode == 1
    assert problem in result.stderr.splitlines()
    assert result.stdout == ""

    data["mailboxes"]["201"]["numbers"] = ["0301234"]
    data["mailboxes"]["201"]["ring_secs"] = 5
    result = run("check-config", "-c", str(write_config(path, data)))
    assert result.returncode == 1
    assert "mailboxes.201.numbers[0]: '0301234' is not an E.164 number" in result.stderr
    assert "mailboxes.201.ring_secs: unknown key" in result.stderr


def test_secrets_are_not_printed(tmp_path: Path) -> None:
    data = base_data(tmp_path)
    path = write_config(tmp_path / "vm.yaml", data)
    result = run("check-config", "-c", str(path))
    assert result.returncode == 0, result.stderr
    for secret in (data["twilio"]["auth_token"], "anna-pw", data["server"]["secret_key"]):
        assert secret not in result.stdout + result.stderr
    assert yaml.safe_load(path.read_text())  # the file itself is untouched


def test_usage_errors_exit_2() -> None:
    assert run("check-config").returncode == 2
    assert run("no-such-command", "-c", "x").returncode == 2


def test_bad_values_and_encodings_are_one_line_each_not_a_traceback(tmp_path: Path) -> None:
    path = write_config(tmp_path / "vm.yaml", base_data(tmp_path))
    good = path.read_text()
    for text, expected in (
        (
            good.replace(
                next(line for line in good.splitlines() if "public_url" in line),
                '  public_url: "http://[::1"',
            ),
            "server.public_url: 'http://[::1' is not a valid URL",
        ),
        (
            good.replace("workers: 2", "workers: !!int ten")
            if "workers: 2" in good
            else good + "x: !!int ten\n",
            "cannot be read as tag:yaml.org,2002:int",
        ),
        (good + "extra: !unknown-tag 1\n", "could not determine a constructor for the tag '!unknown-tag'"),
    ):
        path.write_text(text)
        result = run("check-config", "-c", str(path))
        assert result.returncode == 1, result.stdout
        assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert all(line.startswith("vm.yaml:") for line in result.stderr.splitlines() if line.strip()), (
            result.stderr
        )
    path.write_bytes(good.encode() + b"# caf\xe9\n")
    result = run("check-config", "-c", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"vm.yaml:{len(good.splitlines()) + 1}: not valid UTF-8" in result.stderr, result.stderr


def test_reload_accepts_an_unusable_key_as_sighup_does(tmp_path: Path, gpg_keys: GpgKeys) -> None:
    """`vm2mail reload` must not refuse what the running gateway would apply on SIGHUP."""
    stranger = gpg_keys("Stranger", import_to_gateway=False)
    data = merge(
        base_data(tmp_path),
        {
            "gpg": {"home": str(gpg_keys.home)},
            "mailboxes": {"201": {"gpg_recipients": [stranger.fingerprint]}},
        },
    )
    path = write_config(tmp_path / "vm.yaml", data)
    spool = tmp_path / "spool"
    spool.mkdir()
    # A stand-in for the gateway: SIGHUP ends `sleep`, so its exit status shows the signal arrived.
    stand_in = subprocess.Popen(["sleep", "60"])
    try:
        (spool / "vm2mail.pid").write_text(f"{stand_in.pid}\n")
        result = run("reload", "-c", str(path))
        assert result.returncode == 0, result.stderr
        assert f"key {stranger.fingerprint}: not in keyring" in result.stderr
        assert result.stderr.startswith("WARNING: vm.yaml:")
        assert stand_in.wait(10) == -1  # SIGHUP
    finally:
        stand_in.kill()
        stand_in.wait()
