"""Fast throwaway OpenPGP keys (ed25519 signing, cv25519 encryption) for demos and tests."""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

# Throwaway keys have no passphrase; loopback pinentry keeps gpg from asking for one.
NO_PASSPHRASE = ("--passphrase", "", "--pinentry-mode", "loopback")


def _gpg(home: Path, *args: str, stdin: bytes | None = None) -> str:
    result = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--yes", "--no-tty", *args],
        input=stdin,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"gpg {' '.join(args)} failed: {result.stderr.decode(errors='replace')}")
    return result.stdout.decode()


def init_home(home: Path) -> Path:
    """Create a GNUPGHOME with safe permissions (gpg refuses group/world readable homes)."""
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    return home


def make_key(home: Path, name: str, email: str, expire: str = "2y") -> str:
    """Generate a passphrase-less ed25519/cv25519 key in ``home``; return its fingerprint."""
    init_home(home)
    uid = f"{name} <{email}>"
    _gpg(
        home,
        *NO_PASSPHRASE,
        "--quick-gen-key",
        uid,
        "ed25519",
        "cert,sign",
        expire,
    )
    fpr = fingerprints(home, email)[0]
    _gpg(
        home,
        *NO_PASSPHRASE,
        "--quick-add-key",
        fpr,
        "cv25519",
        "encr",
        expire,
    )
    return fpr


def fingerprints(home: Path, query: str) -> list[str]:
    out = _gpg(home, "--with-colons", "--list-keys", query)
    lines = out.splitlines()
    return [
        line.split(":")[9]
        for prev, line in itertools.pairwise(lines)
        if prev.startswith("pub:") and line.startswith("fpr:")
    ]


def export_public(home: Path, fpr: str) -> bytes:
    return _gpg(home, "--armor", "--export", fpr).encode()


def export_secret(home: Path, fpr: str) -> bytes:
    return _gpg(home, "--armor", *NO_PASSPHRASE, "--export-secret-keys", fpr).encode()


def import_keys(home: Path, armored: bytes) -> None:
    init_home(home)
    _gpg(home, "--import", stdin=armored)


def decrypt(home: Path, armored: bytes) -> bytes:
    """Decrypt with the secret keys in ``home`` (as a user's mail client would)."""
    result = subprocess.run(
        [
            "gpg",
            "--homedir",
            str(home),
            "--batch",
            "--no-tty",
            *NO_PASSPHRASE,
            "--decrypt",
        ],
        input=armored,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"gpg --decrypt failed: {result.stderr.decode(errors='replace')}")
    return result.stdout


def kill_agent(home: Path) -> None:
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False)
