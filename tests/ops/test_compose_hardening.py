"""The gateway delivers under the compose recipe's hardening: read-only root, no capabilities, own uid.

Docker cannot run here, so the container's restrictions are applied to a ``vm2mail serve`` process the
way the kernel applies them to the container: a private mount namespace in which every mount is
read-only except the two volumes (spool, gnupg) and a tmpfs ``/tmp``; the Dockerfile's unprivileged
uid; no capabilities (``cap_drop: [ALL]``); ``no-new-privileges``.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.e2e.harness import Stack, decrypt, free_port, parse, twilio_up
from tests.e2e.test_crash import wait_healthy
from tests.e2e.test_voicemail import messages

ROOT = Path(__file__).resolve().parents[2]
UID = 10001  # deploy/compose/Dockerfile: useradd --uid 10001 vm2mail


def _open_parents(path: Path) -> None:
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & 0o001:
            directory.chmod((mode & 0o7777) | 0o001)


@pytest.fixture(autouse=True)
def _needs_namespaces() -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("setpriv") is None:
        pytest.skip("needs root, unshare and setpriv (util-linux) for a mount namespace")
    if subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False).returncode != 0:
        pytest.skip("mount namespaces are not permitted here")


def _python_visible(scratch: Path) -> str:
    """Shell lines that make this interpreter reachable for the container's user.

    The image has Python in /usr/local; here it may sit under a directory only root can enter
    (pyenv in /root): inside the namespace that directory is replaced by an empty tmpfs holding
    just the interpreter, so nothing of the host's is opened to anybody.
    """
    prefix = Path(sys.base_prefix)
    blocked = next((d for d in reversed(prefix.parents) if not d.stat().st_mode & 0o001), None)
    if blocked is None:
        return ""
    keep = scratch / "python"
    keep.mkdir()
    q = shlex.quote
    return (
        f"mount --bind {q(str(prefix))} {q(str(keep))}\n"
        f"mount -t tmpfs -o mode=0755 tmpfs {q(str(blocked))}\n"
        f"mkdir -p {q(str(prefix))}\nmount --bind {q(str(keep))} {q(str(prefix))}\n"
    )


def contained(config: Path, volumes: list[Path], scratch: Path) -> list[str]:
    """``vm2mail serve`` as the compose service runs it, in a mount namespace of its own."""
    tmp = scratch / "container-tmp"
    tmp.mkdir()
    keep = " ".join(shlex.quote(str(p)) for p in volumes)
    probe = shlex.quote(str(ROOT / ".read-only-probe"))
    script = f"""
set -e
{_python_visible(scratch)}
for volume in {keep}; do mount --bind "$volume" "$volume"; done
mount -t tmpfs -o nosuid,nodev,noexec,mode=1777 tmpfs {shlex.quote(str(tmp))}
awk '{{print $2}}' /proc/self/mounts | sort -u | while read -r point; do
  case " {keep} {tmp} " in *" $point "*) continue;; esac
  case "$point" in /proc*|/sys*|/dev*) continue;; esac
  mount -o remount,bind,ro "$point" 2>/dev/null || true
done
if touch {probe} 2>/dev/null; then echo "root is writable" >&2; rm -f {probe}; exit 3; fi
exec setpriv --reuid={UID} --regid={UID} --clear-groups --inh-caps=-all --bounding-set=-all \\
  --no-new-privs env HOME=/nonexistent TMPDIR={shlex.quote(str(tmp))} \\
  {shlex.quote(sys.executable)} -m vm2mail serve -c {shlex.quote(str(config))}
"""
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script]


def test_gateway_under_the_compose_hardening_delivers_a_voicemail(
    stack: Callable[..., Stack], tmp_path: Path
) -> None:
    port = free_port()
    s = stack({"201": {"encrypted": True}}, server={"listen": f"127.0.0.1:{port}", "workers": 2})
    # The volumes, owned by the image's user; the keyring copied as `keys import` would have made it.
    spool, gnupg = tmp_path / "volumes" / "spool", tmp_path / "volumes" / "gnupg"
    spool.mkdir(parents=True)
    shutil.copytree(s.config.gpg.home, gnupg, ignore=shutil.ignore_patterns("S.*", "*.lock"))
    for volume in (spool, gnupg):
        for path in [volume, *volume.rglob("*")]:
            os.chown(path, UID, UID)
    data = yaml.safe_load(s.config.source.read_text())
    data["server"]["spool_dir"], data["gpg"]["home"] = str(spool), str(gnupg)
    config = tmp_path / "vm2mail.yaml"  # mounted read-only, as compose does
    config.write_text(yaml.safe_dump(data))
    config.chmod(0o644)
    _open_parents(config.parent)
    _open_parents(spool.parent)
    log = tmp_path / "gateway.log"
    s.config.server.spool_dir.mkdir(parents=True, exist_ok=True)

    async def scenario() -> str:
        async with twilio_up(s):
            with log.open("ab") as out:
                gateway = subprocess.Popen(
                    contained(config, [spool, gnupg], tmp_path), stdout=out, stderr=out, cwd=ROOT
                )
            try:
                await wait_healthy(port, gateway)
                trace = await s.call(port, caller="+4930123456")
                assert trace.recording is not None
                sid = trace.recording.sid
                for _ in range(1800):
                    if (spool / "done" / f"twilio-{sid}.json").exists():
                        return sid
                    assert not (spool / "failed" / f"twilio-{sid}.json").exists(), log.read_text()[-3000:]
                    await asyncio.sleep(0.05)
                raise AssertionError(log.read_text()[-3000:])
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
    assert {p.stat().st_uid for p in spool.rglob("*")} == {UID}  # written by the container's user only
