"""Admin commands: ``keys create-playback``, ``pin reset|unlock``, and running as the spool's owner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.cli.conftest import acli, cli
from tests.e2e.harness import Stack
from tests.fixtures.config import base_data, merge, write_config
from tests.fixtures.gpg import GpgKeys
from tests.fixtures.twilio import make_wav, run
from tests.menu.conftest import (  # noqa: F401  (fixture)
    OWNER,
    PIN,
    MenuEnv,
    menu_env,
    stack,
)
from vm2mail.cli import main
from vm2mail.devstack import keys
from vm2mail.jobs.jobs import VOICEMAIL, CallInfo, Job
from vm2mail.jobs.spool import Spool
from vm2mail.logins import Logins
from vm2mail.mailstore.metadata import Metadata
from vm2mail.mailstore.store import ImapStore

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


# -- reports: every config problem at once, group keys, spool age -----------------------------------------
def test_check_config_reports_key_problems_with_the_other_errors(tmp_path: Path, gpg_keys: GpgKeys) -> None:
    stranger = gpg_keys("Stranger", import_to_gateway=False)
    v6 = "AB" * 32  # a v6 fingerprint (RFC 9580 §5.5.4): accepted as such, then looked up like any other
    data = merge(
        base_data(tmp_path),
        {
            "gpg": {"home": str(gpg_keys.home)},
            "mailboxes": {"201": {"gpg_recipients": [stranger.fingerprint, v6], "ring_secs": 5}},
        },
    )
    result = cli("check-config", "-c", str(write_config(tmp_path / "vm.yaml", data)))
    assert result.returncode == 1
    assert "mailboxes.201.ring_secs: unknown key" in result.stderr
    assert f"mailboxes.201.gpg_recipients[0]: key {stranger.fingerprint}: not in keyring" in result.stderr
    assert f"mailboxes.201.gpg_recipients[1]: key {v6}: not in keyring" in result.stderr
    assert "not a full" not in result.stderr


def test_status_shows_a_groups_member_keys_and_spool_age_is_time_in_the_spool(
    stack: Callable[..., Stack],  # noqa: F811
) -> None:
    s = stack({"201": {"encrypted": True}, "202": {}, "300": {"members": ["201", "202"]}})
    config = str(s.config.source)
    report = json.loads(cli("status", "-c", config, "--json").stdout)
    group = next(b for b in report["mailboxes"] if b["id"] == "300")
    assert group["key_state"] == "ok" and [k["mailbox"] for k in group["keys"]] == ["201"]
    text = cli("status", "-c", config).stdout
    row = next(line for line in text.splitlines() if line.startswith("300"))
    fpr = s.accounts["201"].key.fingerprint  # type: ignore[union-attr]
    assert f"201: {fpr[-16:]} ok" in row and "none (plain)" not in row

    # A voicemail imported from an old Asterisk spool: left in 2025, queued just now.
    spool = Spool(s.spool)
    spool.open_sync()
    job = Job(
        id="asterisk-old1", kind=VOICEMAIL, source="asterisk", mailbox="202",
        message_id="<old1@vm.example.com>", call=CallInfo(call_sid="old1", called="+15550002002"),
        started_at=datetime(2025, 6, 1, 9, 0, tzinfo=UTC).isoformat(), queued_at=time.time() - 120,
    )  # fmt: skip
    assert spool.submit_sync(job, make_wav(1.0), ".wav")
    listing = cli("spool", "list", "-c", config)
    [row] = [line.split() for line in listing.stdout.splitlines() if "asterisk-old1" in line]
    assert row[3] in ("2m", "3m"), row  # not "551d"
