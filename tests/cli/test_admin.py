"""Admin commands: ``keys create-playback``, ``pin reset|unlock``, and running as the spool's owner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.cli.conftest import acli, cli
from tests.fixtures.config import base_data, write_config
from tests.fixtures.twilio import run
from tests.menu.conftest import OWNER, PIN, MenuEnv, menu_env  # noqa: F401  (fixture)
from vm2mail.cli import main
from vm2mail.devstack import keys
from vm2mail.mailstore.metadata import Metadata
from vm2mail.mailstore.store import ImapStore
from vm2mail.menu.login import Logins

NOBODY = 65534


def _config(tmp_path: Path, **gpg: Any) -> Path:
    data = base_data(tmp_path)
    data["gpg"] = {"home": str(tmp_path / "gnupg"), **gpg}
    return write_config(tmp_path / "vm.yaml", data)


def test_create_playback_key_prints_the_config_line_and_the_key_decrypts(tmp_path: Path) -> None:
    path = _config(tmp_path)
    made = cli("keys", "create-playback", "-c", str(path))
    assert made.returncode == 0, made.stderr
    [line] = [line for line in made.stdout.splitlines() if "playback_key:" in line]
    fpr = line.split()[-1]
    assert len(fpr) == 40 and f"gpg:\n  playback_key: {fpr}" in made.stdout
    home = tmp_path / "gnupg"
    assert (home.stat().st_mode & 0o777) == 0o700
    # The gateway can encrypt to it and decrypt with it, unattended (no passphrase).
    sealed = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--armor", "--trust-model", "always", "-r", fpr, "-e"],
        input=b"hello", capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert keys.decrypt(home, sealed) == b"hello"
    keys.kill_agent(home)

    # Configured and present: a second run would orphan messages encrypted to it, so it refuses.
    pinned = _config(tmp_path, playback_key=fpr)
    again = cli("keys", "create-playback", "-c", str(pinned))
    assert again.returncode == 1 and "already in" in again.stderr and "--force" in again.stderr
    listed = cli("keys", "list", "-c", str(pinned))
    assert "(playback)" in listed.stdout and fpr in listed.stdout


def _traversable(path: Path) -> None:
    """Let another user reach ``path`` (pytest's temporary directories are 0700 root)."""
    for parent in [path, *path.parents]:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o011)


def _as_user(uid: int, argv: list[str]) -> tuple[int, str]:
    """``vm2mail ARGV`` in a forked child running as ``uid``: this interpreter lives under /root, which
    another user cannot exec, so the child keeps the already loaded one. Exit code and output."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 99
        try:
            os.close(read)
            sys.stdout = sys.stderr = os.fdopen(write, "w")
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            code = main(argv)
        finally:
            sys.stdout.flush()
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        output = pipe.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output


def test_wrong_user_is_refused_and_root_runs_as_the_spool_owner(tmp_path: Path) -> None:
    path = _config(tmp_path)
    (tmp_path / "spool").mkdir()
    _traversable(tmp_path)
    path.chmod(0o644)

    # The spool belongs to root: nobody else may write to it (the check runs before any file is made).
    code, output = _as_user(NOBODY, ["spool", "retry", "-c", str(path), "twilio-RE1"])
    assert code == 1, output
    assert "run this command as root, the owner of the spool" in output and "(you are nobody)" in output

    # The gateway's user owns the spool; root running an admin command becomes that user.
    os.chown(tmp_path / "spool", NOBODY, NOBODY)
    data = base_data(tmp_path)
    data["gpg"] = {"home": str(tmp_path / "spool" / "gnupg")}
    moved = write_config(tmp_path / "nobody.yaml", data)
    moved.chmod(0o644)
    made = cli("keys", "create-playback", "-c", str(moved))
    assert made.returncode == 0, made.stderr
    assert "running as nobody, the owner of the spool" in made.stderr
    home = tmp_path / "spool" / "gnupg"
    owned = {p.name: p.stat().st_uid for p in [home, *home.rglob("*")] if not p.is_socket()}
    assert owned and set(owned.values()) == {NOBODY}, owned
    keys.kill_agent(home)


def test_pin_unlock_lifts_a_lockout_and_reset_restores_the_yaml_pin(menu_env: Callable[..., MenuEnv]) -> None:  # noqa: F811
    env = menu_env(menu={"lockout_failures": 2, "max_pin_attempts": 3})
    config_file = str(env.config.source)

    async def login(session: Any, gw: Any, pin: str) -> str:
        walker = env.walker(session, gw, caller=OWNER)
        await walker.call()
        page = await walker.press(pin)
        return page.text

    async def scenario() -> None:
        async with env.session() as session, env.up() as gw:
            assert (await login(session, gw, "0000")).startswith("Login incorrect")
            assert "This mailbox is locked" in await login(session, gw, "0000")
            assert "This mailbox is locked" in await login(session, gw, PIN)
            unlocked = await acli("pin", "unlock", "201", "-c", config_file)
            assert unlocked.returncode == 0, unlocked.stderr
            assert "mailbox 201: unlocked (it was locked until" in unlocked.stdout
            assert "You have" in await login(session, gw, PIN)

            # The user changed the PIN by phone (kept in METADATA, it wins over the YAML pin) ...
            store = ImapStore(env.config.imap)
            try:
                await Logins(lambda: env.config, Metadata(store)).change_pin(env.box, "24680")
            finally:
                await store.close()
            assert "You have" in await login(session, gw, "24680")
            assert (await login(session, gw, PIN)).startswith("Login incorrect")
            # ... and forgot it: the admin resets it, and the YAML pin works again.
            reset = await acli("pin", "reset", "201", "-c", config_file)
            assert reset.returncode == 0, reset.stderr
            assert "the PIN set by phone is removed; the pin in the configuration applies" in reset.stdout
            assert "You have" in await login(session, gw, PIN)
            assert (await login(session, gw, "24680")).startswith("Login incorrect")

    run(scenario())
    unknown = cli("pin", "unlock", "999", "-c", config_file)
    assert unknown.returncode == 1 and "no mailbox '999'" in unknown.stderr
