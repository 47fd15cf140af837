"""The gateway delivers under the shipped systemd unit's syscall filter, and priority never fails a job."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.e2e.harness import Stack, decrypt, free_port, parse, twilio_up
from tests.e2e.test_crash import wait_healthy
from tests.e2e.test_voicemail import messages
from tests.fixtures import sandbox

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "vm2mail.service"


def sandboxed(unit: Path, *command: str) -> list[str]:
    return [sys.executable, "-m", "tests.fixtures.sandbox", str(unit), "--", *command]


@pytest.fixture(autouse=True)
def _needs_systemd_tables() -> None:
    try:
        sandbox.unit_filter(UNIT)
    except FileNotFoundError:
        if os.environ.get("CI"):
            raise  # CI installs systemd (make deps): a missing filter table there is a failure
        pytest.skip("systemd-analyze is not installed (package systemd)")


def test_the_filter_is_the_units_own() -> None:
    allowed, error = sandbox.unit_filter(UNIT)
    # What the unit denies stays denied (~@privileged @resources), save lowering one's own priority.
    assert error == 1  # EPERM
    assert {"setrlimit", "sched_setscheduler", "mount", "reboot", "setuid"}.isdisjoint(allowed)
    assert {"execve", "clone3", "socket", "setpriority"} <= allowed
    probe = "import os\ntry:\n os.sched_setaffinity(0, {0}); print('allowed')\n"
    probe += "except OSError as e: print(e.errno)"
    out = subprocess.run(
        sandboxed(UNIT, sys.executable, "-c", probe), capture_output=True, text=True, cwd=ROOT
    )
    assert out.stdout.strip() == "1", out.stderr


def test_gateway_under_the_units_syscall_filter_delivers_a_voicemail(
    stack: Callable[..., Stack], tmp_path: Path
) -> None:
    port = free_port()
    s = stack({"201": {"encrypted": True}}, server={"listen": f"127.0.0.1:{port}", "workers": 2})
    log = tmp_path / "gateway.log"

    async def scenario() -> str:
        async with twilio_up(s):
            with log.open("ab") as out:
                gateway = subprocess.Popen(
                    sandboxed(UNIT, sys.executable, "-m", "vm2mail", "serve", "-c", str(s.config.source)),
                    stdout=out,
                    stderr=out,
                    cwd=ROOT,
                )
            try:
                await wait_healthy(port, gateway)
                trace = await s.call(port, caller="+4930123456")
                assert trace.recording is not None
                assert await s.wait_job(trace.recording.sid, timeout=90) == "done", log.read_text()[-3000:]
                return trace.recording.sid
            finally:
                gateway.terminate()
                gateway.wait()

    sid = asyncio.run(scenario())
    [message] = messages(s, "201")
    outer = parse(message.raw)
    assert outer["Message-ID"] == f"<{sid}@vm.example.com>"
    key = s.accounts["201"].key
    assert key is not None
    assert any(p.get_content_type() == "audio/mpeg" for p in decrypt(outer, key).walk())
    assert "Traceback" not in log.read_text()


def test_encoding_and_batch_work_succeed_where_setpriority_is_denied(tmp_path: Path) -> None:
    """A stricter sandbox (the unit without its setpriority exception) costs priority, not the job."""
    unit = tmp_path / "strict.service"
    unit.write_text(
        "\n".join(line for line in UNIT.read_text().splitlines() if line != "SystemCallFilter=setpriority")
    )
    assert "setpriority" not in sandbox.unit_filter(unit)[0]
    wav = tmp_path / "in.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", str(wav), "synth", "1", "sine", "440"], check=True)
    program = f"""
import asyncio, os
from pathlib import Path
from vm2mail.audio.transcode import transcode_to_mp3
from vm2mail.priority import lower_priority, run_batch
async def main():
    base = os.getpriority(os.PRIO_PROCESS, 0)  # the test run may itself be niced
    encoded = await transcode_to_mp3(Path({str(wav)!r}), Path({str(tmp_path / "out.mp3")!r}))
    nice = await run_batch(os.getpriority, os.PRIO_PROCESS, 0)
    print(round(encoded.duration), nice - base, lower_priority())
asyncio.run(main())
"""
    out = subprocess.run(
        sandboxed(unit, sys.executable, "-c", program), capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "0", "False"], out.stderr


def test_compose_image_installs_the_wheel_and_writes_only_to_its_volumes() -> None:
    """Docker cannot run here: check that the recipe matches what the unit's test shows works."""
    compose_dir = ROOT / "deploy" / "compose"
    dockerfile = (compose_dir / "Dockerfile").read_text()
    # Not editable (the wheel carries templates/, as `make wheel-demo` checks), built with setup.py.
    assert "pip install --no-cache-dir ." in dockerfile and " -e " not in dockerfile
    assert "COPY pyproject.toml setup.py README.md ./" in dockerfile and "COPY templates" in dockerfile
    gateway = yaml.safe_load((compose_dir / "compose.yaml").read_text())["services"]["gateway"]
    assert gateway["read_only"] is True and gateway["cap_drop"] == ["ALL"] and "/tmp" in gateway["tmpfs"]
    writable = {mount.split(":")[1] for mount in gateway["volumes"] if not mount.endswith(":ro")}
    example = yaml.safe_load((compose_dir / "vm2mail.example.yaml").read_text())
    # Everything the gateway writes (spool, keyring and gpg-agent socket) is a volume; temp files go to /tmp.
    assert {example["server"]["spool_dir"], example["gpg"]["home"]} <= writable
