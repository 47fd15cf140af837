"""The deploy recipes are accepted by the tools that run them: doveconf, systemd, compose, our loader."""

from __future__ import annotations

import imaplib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.e2e.harness import free_port
from vm2mail.config import load_config
from vm2mail.devstack.dovecot import DevDovecot

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
VM2MAIL = Path(sys.executable).parent / "vm2mail"


def test_dovecot_snippet_in_the_compose_configuration_passes_doveconf(
    dovecot: DevDovecot, tmp_path: Path
) -> None:
    """compose/dovecot.conf including dovecot/vm2mail.conf, with /etc/dovecot moved under tmp_path."""
    etc = tmp_path / "etc-dovecot"
    (etc / "conf.d").mkdir(parents=True)
    (etc / "tls").mkdir()
    shutil.copy(dovecot.root / "tls" / "server.pem", etc / "tls" / "fullchain.pem")
    shutil.copy(dovecot.root / "tls" / "server.key", etc / "tls" / "privkey.pem")
    for name in ("users", "master-users"):
        (etc / name).write_text("")
    main = (DEPLOY / "compose" / "dovecot.conf").read_text().replace("/etc/dovecot/", f"{etc}/")
    (etc / "dovecot.conf").write_text(main)
    snippet = (DEPLOY / "dovecot" / "vm2mail.conf").read_text().replace("/etc/dovecot/", f"{etc}/")
    (etc / "conf.d" / "99-vm2mail.conf").write_text(snippet)
    result = subprocess.run(
        ["doveconf", "-c", str(etc / "dovecot.conf"), "-n"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr.lower(), result.stderr
    out = " ".join(result.stdout.split())
    for setting in (
        "auth_master_user_separator = *",
        "master = yes",
        "result_success = continue",
        "imap_metadata = yes",
        "mail_attribute_dict = file:%h/dovecot-attributes",
        "mail_max_userip_connections = 50",
        "imap_idle_notify_interval = 5 mins",
        "default_process_limit = 2000",
        "process_limit = 4000",
    ):
        assert setting in out, setting
    assert re.search(r"mailbox Trash \{ auto = subscribe special_use = \\Trash \}", out), out


def test_systemd_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (package systemd)")
    unit = tmp_path / "vm2mail.service"
    # The unit names the installed binary; verify checks that it exists, so point it at this venv's.
    text = (DEPLOY / "systemd" / "vm2mail.service").read_text()
    unit.write_text(text.replace("/opt/vm2mail/.venv/bin/vm2mail", str(VM2MAIL)))
    verify = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, check=False)
    # verify exits 0 on unknown keys and bad values too: any message about our file is a failure.
    assert verify.returncode == 0 and str(unit) not in verify.stderr, verify.stderr
    for line in (
        "User=vm2mail",
        "StateDirectory=vm2mail",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/vm2mail",
        "CapabilityBoundingSet=\n",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "SystemCallFilter=@system-service",
    ):
        assert line in text, line
    # systemd's own exposure score (0 = locked down, 10 = unprotected): 2.0 or better.
    security = subprocess.run(
        [analyze, "security", "--offline=yes", "--threshold=20", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert security.returncode == 0, security.stdout[-2000:]


def test_compose_file_wires_gateway_dovecot_and_tls_proxy(tmp_path: Path) -> None:
    compose_dir = DEPLOY / "compose"
    compose = yaml.safe_load((compose_dir / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"gateway", "dovecot", "caddy"}
    gateway = services["gateway"]
    assert (compose_dir / gateway["build"]["context"] / gateway["build"]["dockerfile"]).is_file()
    mounts = {m.split(":")[1]: m.split(":")[0] for m in gateway["volumes"]}
    assert mounts["/var/lib/vm2mail/spool"] == "spool" and mounts["/var/lib/vm2mail/gnupg"] == "gnupg"
    assert {"spool", "gnupg"} <= set(compose["volumes"])
    for service in services.values():  # every bind-mounted recipe file ships in deploy/
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith(".") and "secrets" not in source and source != "./tls":
                assert (compose_dir / source).exists() or source == "./vm2mail.yaml", source
    assert "ffmpeg" in (compose_dir / "Dockerfile").read_text()
    assert "gnupg" in (compose_dir / "Dockerfile").read_text()
    assert "reverse_proxy gateway:8080" in (compose_dir / "Caddyfile").read_text()
    # The example configuration loads, with the compose secrets where compose puts them.
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "secret_key").write_text("0123456789abcdef0123456789abcdef\n")
    (secrets / "twilio_token").write_text("token\n")
    (secrets / "imap_master_password").write_text("master\n")
    example = (compose_dir / "vm2mail.example.yaml").read_text().replace("/run/secrets/", f"{secrets}/")
    example = example.replace("ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "AC" + "0" * 32)
    (tmp_path / "vm2mail.yaml").write_text(example)
    config = load_config(tmp_path / "vm2mail.yaml")
    assert config.imap.host == "dovecot" and config.imap.master_password == "master"
    assert set(compose["secrets"]) == {"twilio_token", "secret_key", "imap_master_password"}


def _open_parents(path: Path) -> None:
    """Let Dovecot's unprivileged processes traverse ``path`` (pytest's directories are 0700)."""
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & 0o001:
            directory.chmod((mode & 0o7777) | 0o001)


def test_dovecot_with_the_snippet_serves_master_logins_metadata_and_trash(
    dovecot: DevDovecot, tmp_path: Path
) -> None:
    """The compose Dovecot with the snippet, started for real: what the gateway relies on works."""
    etc = tmp_path / "etc"
    (etc / "conf.d").mkdir(parents=True)
    (etc / "tls").mkdir()
    shutil.copy(dovecot.root / "tls" / "server.pem", etc / "tls" / "fullchain.pem")
    shutil.copy(dovecot.root / "tls" / "server.key", etc / "tls" / "privkey.pem")
    (etc / "users").write_text("anna@example.com:{PLAIN}anna-pw::::::\n")
    (etc / "master-users").write_text("vm2mail:{PLAIN}master-pw::::::\n")
    mail = tmp_path / "mail"
    mail.mkdir()
    os.chown(mail, 1000, 1000)  # compose.yaml's mail_uid
    _open_parents(mail)
    run = Path(tempfile.mkdtemp(prefix="dvs-"))  # unix socket paths must stay short
    run.chmod(0o755)  # Dovecot's base_dir is world-readable
    port, tls_port = free_port(), free_port()
    main = (DEPLOY / "compose" / "dovecot.conf").read_text().replace("/etc/dovecot/", f"{etc}/")
    main = main.replace("listen = *", "listen = 127.0.0.1").replace("home=/srv/mail/", f"home={mail}/")
    main = main.replace("port = 143", f"port = {port}").replace("port = 993", f"port = {tls_port}")
    main = main.replace("log_path = /dev/stderr", f"log_path = {tmp_path / 'dovecot.log'}")
    # Test-only: a throwaway instance started as root (FIELD-NOTES, "Dovecot 2.3").
    main += (
        f"base_dir = {run}\nstate_dir = {tmp_path / 'state'}\ninstance_name = vm2mail-snippet-{port}\n"
        "default_login_user = dovenull\ndefault_internal_user = dovecot\n"
        "service imap-login {\n  chroot =\n}\nservice anvil {\n  chroot =\n}\n"
    )
    (tmp_path / "state").mkdir()
    (etc / "dovecot.conf").write_text(main)
    snippet = (DEPLOY / "dovecot" / "vm2mail.conf").read_text().replace("/etc/dovecot/", f"{etc}/")
    (etc / "conf.d" / "99-vm2mail.conf").write_text(snippet)
    # The daemon inherits stdout/stderr: pipes would never reach EOF, so a file it is.
    with (tmp_path / "start.err").open("w") as err:
        code = subprocess.call(["dovecot", "-c", str(etc / "dovecot.conf")], stdout=err, stderr=err)
    assert code == 0, (tmp_path / "start.err").read_text()
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                imap = imaplib.IMAP4("127.0.0.1", port)
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "dovecot.log").read_text()
                time.sleep(0.05)
        with imap:
            imap.login("anna@example.com*vm2mail", "master-pw")  # the gateway's master login
            capabilities = imap.capability()[1][0].split()
            assert b"METADATA" in capabilities and b"SPECIAL-USE" in capabilities
            _, folders = imap.list()
            assert b'(\\HasNoChildren \\Trash) "/" Trash' in folders
            assert imap.create("Voicemail")[0] == "OK"
            tag = imap._new_tag().decode()  # imaplib knows no METADATA (RFC 5464): raw commands
            imap.send(f'{tag} SETMETADATA Voicemail (/private/vendor/vm2mail/test "x")\r\n'.encode())
            assert imap.readline().startswith(f"{tag} OK".encode())
        with imaplib.IMAP4("127.0.0.1", port) as imap, pytest.raises(imaplib.IMAP4.error):
            imap.login("nobody@example.com*vm2mail", "master-pw")  # result_success = continue
        log = (tmp_path / "dovecot.log").read_text()
        assert "Warning" not in log and "Error" not in log.replace("Authorization failed", ""), log
    finally:
        subprocess.run(["doveadm", "-c", str(etc / "dovecot.conf"), "stop"], capture_output=True, check=False)
        deadline = time.monotonic() + 15
        while (run / "master.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(run, ignore_errors=True)
