"""`make demo --once` end to end: Dovecot, keys, config, the gateway and one call, as a new user runs it."""

from __future__ import annotations

import email
import email.policy
import socket
import subprocess
import sys
from pathlib import Path

from vm2mail.devstack import keys


def _free_base() -> int:
    """Four consecutive free loopback ports (the demo's gateway, IMAP, IMAPS and Twilio stand-in)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base: int = probe.getsockname()[1]
        if base > 65000:
            continue
        try:
            for port in range(base, base + 4):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no four consecutive free ports")


def test_demo_once_delivers_an_encrypted_voicemail_anna_can_open(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vm2mail.devstack.demo",
            "--once",
            "--root",
            str(root),
            "--port-base",
            str(_free_base()),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "user anna@demo.local, password" in result.stdout
    assert (root / "anna-secret-key.asc").exists()

    # The demo has stopped Dovecot: read Anna's Voicemail folder straight from its Maildir.
    folder = root / "dovecot" / "mail" / "demo.local" / "anna" / "Maildir" / ".Voicemail"
    files = [p for sub in ("new", "cur") for p in (folder / sub).glob("*")]
    assert len(files) == 1, sorted(p.name for p in folder.rglob("*"))
    message = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert message.get_content_type() == "multipart/encrypted"
    assert "Jürgen Müller" in str(message["From"])

    user_home = tmp_path / "anna-gnupg"
    keys.init_home(user_home)
    keys.import_keys(user_home, (root / "anna-secret-key.asc").read_bytes())
    armored = message.get_payload()[1].get_payload(decode=True)
    inner = email.message_from_bytes(keys.decrypt(user_home, armored), policy=email.policy.default)
    keys.kill_agent(user_home)
    audio = [part for part in inner.walk() if part.get_content_type() == "audio/mpeg"]
    assert len(audio) == 1 and len(audio[0].get_payload(decode=True)) > 1000
