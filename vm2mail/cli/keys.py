"""``vm2mail keys list|import|check``: the pinned OpenPGP keys, in the gateway's keyring and usable."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import gnupg

from vm2mail.cli.common import OK, PROBLEMS, Subparsers, group, load_unchecked, table
from vm2mail.config import Config
from vm2mail.crypto.keyhealth import EXPIRING, UNUSABLE, WARN_DAYS, check_keys, configured_keys
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
    for cmd, func in ((listing, cmd_list), (importing, cmd_import), (checking, cmd_check)):
        cmd.add_argument("-c", "--config", required=True, help="the YAML configuration file")
        cmd.set_defaults(func=func)
