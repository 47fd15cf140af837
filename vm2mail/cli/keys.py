"""``vm2mail keys list|import|check|create-playback``: the gateway's OpenPGP keys, present and usable."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import gnupg

from vm2mail.cli.common import OK, PROBLEMS, Subparsers, group, load_unchecked, table
from vm2mail.cli.owner import run_as_spool_owner
from vm2mail.config import Config
from vm2mail.crypto.keyhealth import EXPIRING, UNUSABLE, WARN_DAYS, check_keys, configured_keys
from vm2mail.crypto.pgp import Encryptor
from vm2mail.errors import Vm2mailError


def cmd_list(args: argparse.Namespace) -> int:
    config = load_unchecked(args.config)
    health = check_keys(config)
    if args.json:
        print(json.dumps([h.to_dict() for h in health], indent=1))
        return OK
    if not health:
        print("no keys configured: every mailbox gets plain (unencrypted) voicemail")
        return OK
    rows = [("MAILBOX", "FINGERPRINT", "PRESENT", "ENCRYPT", "EXPIRES", "STATE")]
    for h in health:
        rows.append(
            (
                h.mailbox or "(playback)",
                h.fingerprint,
                "yes" if h.present else "no",
                "yes" if h.usable else "no",
                f"{h.expires:%Y-%m-%d}" if h.expires else ("never" if h.usable else "-"),
                h.state if h.usable else f"{h.state}: {h.problem}",
            )
        )
    print(table(rows))
    return OK


def cmd_check(args: argparse.Namespace) -> int:
    config = load_unchecked(args.config)
    health = check_keys(config)
    now = datetime.now(UTC)
    bad = 0
    for h in health:
        where = f"{h.path} ({h.fingerprint})"
        if h.state == UNUSABLE:
            bad += 1
            print(f"ERROR: {where}: {h.problem}")
        elif h.state == EXPIRING and h.expires is not None:
            print(f"WARNING: {where}: expires {h.expires:%Y-%m-%d}, in {max(0, (h.expires - now).days)} days")
        else:
            print(f"ok: {where}: {h.describe()}")
    if bad:
        print(f"{bad} of {len(health)} configured keys cannot be used", file=sys.stderr)
        return PROBLEMS
    if not health:
        print("no keys configured")
    return OK


def import_keys(config: Config, data: bytes) -> tuple[list[str], list[str]]:
    """Import ``data`` into gpg.home; (pinned fingerprints now trusted ultimately, other fingerprints).

    Only fingerprints pinned in the configuration get ultimate ownertrust (FIELD-NOTES: gpg refuses to
    encrypt to keys it considers invalid; the pin is the admin's trust decision). Keys that are not
    pinned are kept in the keyring but trusted for nothing and never used.
    """
    home = config.gpg.home
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        gpg = gnupg.GPG(gnupghome=str(home))
    except (OSError, ValueError, RuntimeError) as exc:
        raise Vm2mailError(f"cannot run gpg with home {home}: {exc}") from exc
    result = gpg.import_keys(data)
    imported = list(dict.fromkeys(fpr for fpr in result.fingerprints if fpr))
    if not imported:
        raise Vm2mailError(f"no OpenPGP key found in the file ({result.summary()})")
    pinned = {fpr for _, _, fpr in configured_keys(config)}
    trusted = [fpr for fpr in imported if fpr in pinned]
    if trusted:
        try:
            gpg.trust_keys(trusted, "TRUST_ULTIMATE")  # gpg --import-ownertrust
        except ValueError as exc:
            raise Vm2mailError(f"setting ownertrust failed: {exc}") from exc
    return trusted, [fpr for fpr in imported if fpr not in pinned]


def cmd_import(args: argparse.Namespace) -> int:
    config = load_unchecked(args.config)
    run_as_spool_owner(config)
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        raise Vm2mailError(f"cannot read {args.file}: {exc.strerror}") from exc
    trusted, others = import_keys(config, data)
    for fpr in trusted:
        print(f"imported {fpr}: pinned in the configuration, trusted")
    for fpr in others:
        print(f"imported {fpr}: NOT pinned in the configuration, not trusted and not used")
    problems = [h for h in check_keys(config) if h.fingerprint in trusted and h.state == UNUSABLE]
    for h in problems:
        print(f"ERROR: {h.path} ({h.fingerprint}): {h.problem}", file=sys.stderr)
    return PROBLEMS if problems else OK


GPG_TIMEOUT = 60  # seconds; key generation with ed25519/cv25519 takes well under one


def _gpg(home: Path, *args: str) -> str:
    # No passphrase: the gateway decrypts unattended; the key is protected by gpg.home being 0700 and
    # owned by the gateway's user (README, "Phone playback").
    cmd = [
        "gpg",
        "--homedir",
        str(home),
        "--batch",
        "--no-tty",
        "--passphrase",
        "",
        "--pinentry-mode",
        "loopback",
    ]
    try:
        done = subprocess.run([*cmd, *args], capture_output=True, timeout=GPG_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Vm2mailError(f"cannot run gpg: {exc}") from exc
    if done.returncode != 0:
        raise Vm2mailError(f"gpg {args[0]} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode()


def create_playback(config: Config) -> str:
    """Generate the gateway's playback key (ed25519 certify, cv25519 encrypt) in gpg.home; its fingerprint."""
    home = config.gpg.home
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home, 0o700)  # gpg warns about (and some versions refuse) a group-readable home
    uid = f"vm2mail playback <playback@{config.server.mail_domain}>"
    # No expiry: an expired playback key silently stops phone playback; rotate it by hand instead.
    _gpg(home, "--quick-gen-key", uid, "ed25519", "cert", "never")
    listing = _gpg(home, "--with-colons", "--list-secret-keys", uid)
    fprs = [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")]
    if not fprs:
        raise Vm2mailError("gpg made no key")
    fpr = fprs[-1]
    _gpg(home, "--quick-add-key", fpr, "cv25519", "encr", "never")
    return fpr


def cmd_create_playback(args: argparse.Namespace) -> int:
    config = load_unchecked(args.config)
    run_as_spool_owner(config)
    current = config.gpg.playback_key
    if current and not args.force:
        try:
            encryptor = Encryptor(config.gpg.home)
        except Vm2mailError:
            present = True  # as check_keys has it: only "not in keyring" counts as absent
        else:
            present = encryptor.check_key(current) != "not in keyring"  # KeyHealth.present
        if present:
            print(
                f"vm2mail: gpg.playback_key {current} is already in {config.gpg.home}; "
                "--force makes a new one (messages encrypted to the old key then need the old key)",
                file=sys.stderr,
            )
            return PROBLEMS
    fpr = create_playback(config)
    print(f"created the playback key {fpr} in {config.gpg.home}")
    print("add it to the configuration (then reload), and keep a backup of its secret half:\n")
    print(f"gpg:\n  playback_key: {fpr}")
    return OK


def register(sub: Subparsers) -> None:
    keys = group(sub, "keys", "the OpenPGP keys pinned in the configuration")
    listing = keys.add_parser(
        "list",
        help="configured fingerprints per mailbox: present, can encrypt, expiry",
        description="configured fingerprints per mailbox and the playback key: present, can encrypt, expiry",
    )
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    importing = keys.add_parser(
        "import",
        help="import public keys into gpg.home (ultimate trust only for pinned fingerprints)",
        description="import public keys into gpg.home; only fingerprints pinned in the configuration "
        "are trusted",
    )
    importing.add_argument("file", metavar="FILE", help="an armored or binary public key file ('-' = stdin)")
    checking = keys.add_parser(
        "check",
        help=f"exit 1 when a configured key is missing or unusable; warn {WARN_DAYS} days before expiry",
        description=f"exit 1 when a configured key is missing, expired, revoked or cannot encrypt; "
        f"warn about keys expiring within {WARN_DAYS} days",
    )
    creating = keys.add_parser(
        "create-playback",
        help="create the gateway's playback key in gpg.home and print the config line",
        description="create the gateway's own key (no passphrase, no expiry) that phone_playback "
        "mailboxes also encrypt to, so the phone menu can play them; prints gpg.playback_key",
    )
    creating.add_argument("--force", action="store_true", help="make a new key even if one is configured")
    for cmd, func in (
        (listing, cmd_list),
        (importing, cmd_import),
        (checking, cmd_check),
        (creating, cmd_create_playback),
    ):
        cmd.add_argument("-c", "--config", required=True, help="the YAML configuration file")
        cmd.set_defaults(func=func)
