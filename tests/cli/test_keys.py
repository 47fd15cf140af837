"""Key health as an admin meets it: ``keys list|check|import`` and ``check-config`` warnings (real gpg)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.cli.conftest import cli
from tests.fixtures.config import base_data, merge, write_config
from tests.fixtures.gpg import GpgKeys
from vm2mail.devstack import keys


def _config(tmp_path: Path, gpg_keys: GpgKeys, **boxes: list[str]) -> Path:
    """A config whose mailboxes (id → pinned fingerprints) each have a number and a login."""
    mailboxes: dict[str, Any] = {
        box: {
            "name": f"Box {box}",
            "imap_user": f"u{box}",
            "imap_password": "pw",
            "numbers": [f"+1555000{box}"],
            "gpg_recipients": fprs,
        }
        for box, fprs in boxes.items()
    }
    data = merge(base_data(tmp_path), {"gpg": {"home": str(gpg_keys.home)}})
    data["mailboxes"] = mailboxes
    return write_config(tmp_path / "vm.yaml", data)


def _expiring_key(gpg_keys: GpgKeys, tmp_path: Path) -> str:
    """A key that expires tomorrow, public half imported into the gateway's keyring."""
    home = keys.init_home(tmp_path / "soon")
    fpr = keys.make_key(home, "Soon", "soon@example.org", expire="1d")
    keys.import_keys(gpg_keys.home, keys.export_public(home, fpr))
    gpg_keys.homes.append(home)
    return fpr


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_expiring_key_warns_with_line_and_revoked_or_expired_keys_fail(
    tmp_path: Path, gpg_keys: GpgKeys
) -> None:
    good, soon = gpg_keys("Good").fingerprint, _expiring_key(gpg_keys, tmp_path)
    path = _config(tmp_path, gpg_keys, **{"201": [good], "202": [soon]})

    checked = cli("check-config", "-c", str(path))
    assert checked.returncode == 0, checked.stderr
    assert (
        f"WARNING: vm.yaml:{_line_of(path, soon)}: mailboxes.202.gpg_recipients[0]: key {soon} expires"
        in (checked.stderr)
    )
    assert "NUMBER" in checked.stdout  # still valid: the routing table follows

    check = cli("keys", "check", "-c", str(path))
    assert check.returncode == 0
    assert f"WARNING: mailboxes.202.gpg_recipients[0] ({soon}): expires" in check.stdout
    assert f"ok: mailboxes.201.gpg_recipients[0] ({good}): usable, expires" in check.stdout

    listed = json.loads(cli("keys", "list", "-c", str(path), "--json").stdout)
    assert [(k["mailbox"], k["present"], k["usable"], k["state"]) for k in listed] == [
        ("201", True, True, "ok"),
        ("202", True, True, "expiring"),
    ]

    revoked = gpg_keys("Revoked", revoked=True).fingerprint
    expired = gpg_keys("Expired", expired=True).fingerprint
    path = _config(tmp_path, gpg_keys, **{"201": [good], "202": [revoked], "203": [expired]})
    check = cli("keys", "check", "-c", str(path))
    assert check.returncode == 1
    assert f"ERROR: mailboxes.202.gpg_recipients[0] ({revoked}): revoked" in check.stdout
    assert f"ERROR: mailboxes.203.gpg_recipients[0] ({expired}): expired 2020-01-02" in check.stdout
    problem = f"vm.yaml:{_line_of(path, revoked)}: mailboxes.202.gpg_recipients[0]: key {revoked}: revoked"
    checked = cli("check-config", "-c", str(path))  # serve starts with it: a warning, as there
    assert checked.returncode == 0, checked.stderr
    assert f"WARNING: {problem}" in checked.stderr
    checked = cli("check-config", "--strict", "-c", str(path))
    assert checked.returncode == 1
    assert problem in checked.stderr.splitlines()
    table = cli("keys", "list", "-c", str(path)).stdout
    row = next(line for line in table.splitlines() if line.startswith("202"))
    assert row.split()[2:4] == ["yes", "no"] and "revoked" in row


def test_import_trusts_only_pinned_keys(tmp_path: Path, gpg_keys: GpgKeys) -> None:
    anna = gpg_keys("Anna", import_to_gateway=False)
    stranger = gpg_keys("Stranger", import_to_gateway=False)
    path = _config(tmp_path, gpg_keys, **{"201": [anna.fingerprint]})
    missing = cli("keys", "check", "-c", str(path))
    assert missing.returncode == 1 and "not in keyring" in missing.stdout

    bundle = tmp_path / "keys.asc"
    bundle.write_bytes(
        keys.export_public(anna.secret_home, anna.fingerprint)
        + keys.export_public(stranger.secret_home, stranger.fingerprint)
    )
    imported = cli("keys", "import", "-c", str(path), str(bundle))
    assert imported.returncode == 0, imported.stderr
    assert f"imported {anna.fingerprint}: pinned in the configuration, trusted" in imported.stdout
    assert f"imported {stranger.fingerprint}: NOT pinned" in imported.stdout
    ownertrust = subprocess.run(
        ["gpg", "--homedir", str(gpg_keys.home), "--export-ownertrust"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"{anna.fingerprint}:6:" in ownertrust  # ultimate
    assert stranger.fingerprint not in ownertrust
    assert cli("keys", "check", "-c", str(path)).returncode == 0

    (tmp_path / "junk.asc").write_text("not a key\n")
    junk = cli("keys", "import", "-c", str(path), str(tmp_path / "junk.asc"))
    assert junk.returncode == 1 and "no OpenPGP key" in junk.stderr
    assert cli("keys", "import", "-c", str(path), str(tmp_path / "absent.asc")).returncode == 1
