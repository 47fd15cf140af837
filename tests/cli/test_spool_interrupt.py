"""Interrupted or killed command deliveries never strand jobs in cur/ while the gateway runs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.cli.conftest import VM2MAIL, cli
from tests.cli.test_status_spool import _failed_job
from tests.e2e.harness import Stack
from tests.e2e.test_voicemail import messages
from tests.fixtures.faulty_imap import FaultyImap


@pytest.fixture
def gateway_stand_in() -> Iterator[Callable[[Path], None]]:
    """Write a pid file naming a live process, as a running gateway does, into a spool."""
    process = subprocess.Popen(["sleep", "300"])

    def install(spool: Path) -> None:
        (spool / "vm2mail.pid").write_text(f"{process.pid}\n")

    try:
        yield install
    finally:
        process.kill()
        process.wait()


def hanging_config(s: Stack, port: int, tmp_path: Path) -> Path:
    data = yaml.safe_load(s.config.source.read_text())
    data["imap"]["port"] = port
    data["imap"]["timeout_seconds"] = 120
    path = tmp_path / "hanging.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def start_retry(config: Path, job_id: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*VM2MAIL, "spool", "retry", "-c", str(config), job_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_claimed(spool: Path, job_id: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not (spool / "cur" / f"{job_id}.json").exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the command never claimed the job"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_during_delivery_gives_the_job_back(
    stack: Callable[..., Stack],
    silent_imap: FaultyImap,
    gateway_stand_in: Callable[[Path], None],
    tmp_path: Path,
    sig: signal.Signals,
) -> None:
    s = stack({"201": {}})
    job = _failed_job(s.spool, 1)
    gateway_stand_in(s.spool)
    process = start_retry(hanging_config(s, silent_imap.port, tmp_path), job.id)
    wait_claimed(s.spool, job.id, process)
    process.send_signal(sig)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    # Back in new/ at once, for the running gateway to deliver; nothing left claimed.
    assert (s.spool / "new" / f"{job.id}.json").exists()
    assert list((s.spool / "cur").iterdir()) == []


def test_spool_retry_takes_over_a_job_a_killed_command_left_in_cur(
    stack: Callable[..., Stack],
    silent_imap: FaultyImap,
    gateway_stand_in: Callable[[Path], None],
    tmp_path: Path,
) -> None:
    s = stack({"201": {}})
    job = _failed_job(s.spool, 2)
    gateway_stand_in(s.spool)
    process = start_retry(hanging_config(s, silent_imap.port, tmp_path), job.id)
    wait_claimed(s.spool, job.id, process)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    assert (s.spool / "cur" / f"{job.id}.json").exists()  # stranded: the gateway would wait for a restart

    result = cli("spool", "retry", "-c", str(s.config.source), job.id)
    assert result.returncode == 0, result.stderr
    assert f"taking over from pid {process.pid}" in result.stdout
    assert f"{job.id}: delivered" in result.stdout
    assert len(messages(s, "201")) == 1
    assert list((s.spool / "cur").iterdir()) == []


def test_spool_retry_leaves_a_job_the_live_gateway_is_delivering(
    stack: Callable[..., Stack], gateway_stand_in: Callable[[Path], None]
) -> None:
    s = stack({"201": {}})
    job = _failed_job(s.spool, 3)
    os.replace(
        s.spool / "failed" / f"{job.id}.json", s.spool / "cur" / f"{job.id}.json"
    )  # the gateway's claim
    gateway_stand_in(s.spool)
    result = cli("spool", "retry", "-c", str(s.config.source), job.id)
    assert result.returncode == 1
    assert "is in cur/: being delivered now (gateway pid" in result.stderr
    assert (s.spool / "cur" / f"{job.id}.json").exists()


def test_spool_list_shows_why_a_job_failed_not_its_url(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {}})
    url = "https://api.twilio.com/2010-04-01/Accounts/AC" + "0" * 32 + "/Recordings/RE" + "1" * 32 + ".wav"
    _failed_job(s.spool, 4, f"fetching {url} failed: Cannot connect to host api.twilio.com:443 [timed out]")
    listing = cli("spool", "list", "-c", str(s.config.source))
    [row] = listing.stdout.splitlines()[1:]
    assert row.endswith(
        "FAILED: fetching RE"
        + "1" * 32
        + ".wav failed: Cannot connect to host api.twilio.com:443 [timed out]"
    ), row


def test_port_in_use_is_one_clear_line(stack: Callable[..., Stack]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        s = stack({"201": {}}, server={"listen": f"127.0.0.1:{port}"})
        result = cli("serve", "-c", str(s.config.source))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if not line.startswith("ts=")]
    assert lines == [f"vm2mail: server.listen: cannot listen on 127.0.0.1:{port}: Address already in use"], (
        result.stderr
    )
