"""``vm2mail serve``, ``check-config`` and ``simulate-call``: run, validate and try out the gateway."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from vm2mail import logsetup
from vm2mail.cli.common import OK, PROBLEMS, Subparsers, command, load, load_unchecked, table
from vm2mail.config import Config, yamlsource
from vm2mail.errors import ConfigError, Vm2mailError
from vm2mail.jobs.jobs import twilio_job_id

if TYPE_CHECKING:
    from vm2mail.crypto.keyhealth import KeyHealth

REPO = Path(__file__).resolve().parent.parent.parent
SAMPLE_CANDIDATES = (
    Path(__file__).resolve().parent.parent / "devstack" / "sample" / "en-callback-request.wav",  # a wheel
    REPO.parent / "shared" / "samples" / "en-callback-request.wav",
    REPO / "deploy" / "demo" / "en-callback-request.wav",
)


def routing_table(config: Config) -> str:
    rows = [("NUMBER", "MAILBOX", "FORWARD", "RING", "FOLDER", "ENCRYPTION")]
    for box in config.mailboxes.values():
        targets = config.delivery_targets(box)
        encryption = ", ".join(
            f"{t.id}: {'PGP ' + ','.join(f[-16:] for f in t.gpg_recipients) if t.encrypted else 'none'}"
            for t in targets
        )
        folder = ", ".join(f"{t.id}:{t.folder}" for t in targets) if box.is_group else box.folder
        name = f"{box.id} {box.name}" + (f" (group: {', '.join(box.members)})" if box.is_group else "")
        for number in box.numbers or ("-",):
            forward = box.forward_to or "voicemail directly"
            rows.append(
                (number, name, forward, f"{box.ring_seconds}s" if box.forward_to else "-", folder, encryption)
            )
    return table(rows)


def key_warnings(
    config: Config, *, health: list[KeyHealth], source: yamlsource.Source, now: datetime
) -> list[str]:
    """``WARNING: file:line: key.path: key FPR expires DATE (in N days)`` for keys expiring soon, from
    ``check_keys(config, now=now)``."""
    from vm2mail.crypto.keyhealth import EXPIRING, WARN_DAYS

    warnings = []
    for h in health:
        if h.state == EXPIRING and h.expires is not None:
            days = max(0, (h.expires - now).days)
            warnings.append(
                f"WARNING: {config.source.name}:{source.line(h.path)}: {h.path}: key "
                f"{h.fingerprint} expires {h.expires:%Y-%m-%d} (in {days} days, "
                f"warning from {WARN_DAYS} days ahead)"
            )
    return warnings


def _unusable(config: Config, health: list[KeyHealth]) -> list[tuple[str, str]]:
    """What ``key_problems`` says, from ``check_keys``' result: (key path, problem) per unusable key, or
    the one ``gpg.home`` problem when gpg cannot use the home at all."""
    from vm2mail.crypto.pgp import Encryptor

    problems = {h.problem for h in health}
    if len(problems) == 1 and None not in problems:
        # check_keys gives every key the home's problem when gpg cannot run there; key_problems names it once.
        try:
            Encryptor(config.gpg.home)
        except Vm2mailError as exc:
            return [("gpg.home", str(exc))]
    return [(h.path, f"key {h.fingerprint}: {h.problem}") for h in health if h.problem is not None]


def mailbox_warnings(
    config: Config,
    *,
    imap: bool = True,
    health: list[KeyHealth] | None = None,
    source: yamlsource.Source | None = None,
) -> list[str]:
    """``file:line: key: problem`` for what ``serve`` accepts but some mailboxes suffer from: unusable
    keys (their voicemails wait in the spool) and, with ``imap``, a server without the menu's METADATA.

    ``health`` (from ``check_keys``) and ``source`` spare a second keyring scan and YAML read."""
    from vm2mail.app import key_problems
    from vm2mail.readiness import check_metadata_sync

    source = yamlsource.read(config.source) if source is None else source
    found = key_problems(config) if health is None else _unusable(config, health)
    unchecked = None
    if imap:
        metadata, unchecked = check_metadata_sync(config)
        found += metadata
    lines = [f"{config.source.name}:{source.line(path)}: {path}: {problem}" for path, problem in found]
    return lines + ([f"{config.source.name}: {unchecked}"] if unchecked else [])


def cmd_check_config(args: argparse.Namespace) -> int:
    # What serve accepts passes (exit 0): a mailbox's unusable key or the menu's missing METADATA is a
    # warning, since serve runs without it; --strict makes those errors for CI and pre-deploy checks.
    try:
        config = load_unchecked(args.config)
    except ConfigError as exc:
        # One run shows every problem: the key problems too (as warnings unless --strict), even when
        # other errors would stop the file from loading.
        errors = set(exc.problems)
        try:
            load(args.config)
            combined = exc.problems
        except ConfigError as full:
            combined = full.problems
        for line in combined:
            print(line if line in errors or args.strict else f"WARNING: {line}", file=sys.stderr)
        return PROBLEMS
    from vm2mail.crypto.keyhealth import check_keys

    # One keyring scan and one YAML read for both the unusable keys and the expiring ones.
    now = datetime.now(UTC)
    health = check_keys(config, now=now)
    source = yamlsource.read(config.source)
    problems = mailbox_warnings(config, imap=not args.offline, health=health, source=source)
    for line in problems:
        print(f"{'' if args.strict else 'WARNING: '}{line}", file=sys.stderr)
    for warning in key_warnings(config, health=health, source=source, now=now):
        print(warning, file=sys.stderr)
    if args.strict and problems:
        return PROBLEMS
    print(f"{args.config}: OK, {len(config.mailboxes)} mailboxes")
    print(routing_table(config))
    return OK


def cmd_serve(args: argparse.Namespace) -> int:
    from vm2mail.app import load_for_service, serve
    from vm2mail.lifecycle import run_service

    logsetup.setup("text")  # until the file says otherwise: key warnings are logged while loading
    config = load_for_service(Path(args.config))
    logsetup.setup(config.server.log_format)

    run_service(serve(config))  # asyncio.run, with deadlines on the cleanup (SIGTERM always stops)
    return OK


def _default_sample() -> Path:
    for candidate in SAMPLE_CANDIDATES:
        if candidate.exists():
            return candidate
    raise Vm2mailError("no sample WAV found; pass --wav FILE")


async def _simulate(config: Config, args: argparse.Namespace) -> int:
    from vm2mail.devstack.fake_twilio import FakeTwilio
    from vm2mail.devstack.simulator import simulate_call

    api = urlsplit(config.twilio.api_base_url)
    if api.scheme != "http" or api.hostname not in ("127.0.0.1", "localhost"):
        raise Vm2mailError(
            f"twilio.api_base_url is {config.twilio.api_base_url}: simulate-call serves the "
            "recording itself and needs a loopback http:// URL there (see config/demo.yaml)"
        )
    called = args.to or next(n for box in config.mailboxes.values() for n in box.numbers)
    wav = Path(args.wav) if args.wav else _default_sample()
    fake = FakeTwilio(config.twilio.account_sid, config.twilio.auth_token)
    await fake.start(api.hostname or "127.0.0.1", api.port or 80)
    try:
        host = config.server.listen_host
        trace = await simulate_call(
            gateway_url=f"http://{host if host not in ('0.0.0.0', '::') else '127.0.0.1'}:"  # noqa: S104
            f"{config.server.listen_port}",
            public_url=config.server.public_url,
            account_sid=config.twilio.account_sid,
            auth_token=config.twilio.auth_token,
            fake=fake,
            caller=args.caller or None,
            called=called,
            caller_name=args.caller_name,
            wav=wav.read_bytes(),
            dial_outcome=args.dial_outcome,
        )
        print(f"call {trace.call_sid}: {args.caller or 'anonymous'} -> {called}, {len(trace.steps)} webhooks")
        if trace.recording is None:
            print("no recording was made")
            return OK
        sid = trace.recording.sid
        print(f"recording {sid} handed to the gateway; waiting for delivery ...")
        done = config.server.spool_dir / "done" / f"{twilio_job_id(sid)}.json"
        failed = config.server.spool_dir / "failed" / f"{twilio_job_id(sid)}.json"
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            for path, ok in ((done, True), (failed, False)):
                if path.exists():
                    job = json.loads(path.read_text())
                    if ok:
                        print(f"delivered to mailbox(es) {', '.join(job['delivered'])}: {job['message_id']}")
                        return OK
                    print(f"FAILED: {job['history'][-1]}", file=sys.stderr)
                    return PROBLEMS
            await asyncio.sleep(0.1)
        print(f"not delivered within {args.wait}s (is the gateway running? see its log)", file=sys.stderr)
        return PROBLEMS
    finally:
        await fake.stop()


def cmd_simulate_call(args: argparse.Namespace) -> int:
    result: int = asyncio.run(_simulate(load(args.config), args))
    return result


def register(sub: Subparsers) -> None:
    command(sub, "serve", "run the gateway (webhooks, spool workers)", cmd_serve)
    check = command(
        sub,
        "check-config",
        "validate the configuration and print the routing table; warn about unusable keys, keys expiring "
        "within 30 days and an IMAP server without the METADATA the phone menu needs",
        cmd_check_config,
    )
    check.add_argument(
        "--strict", action="store_true", help="unusable keys and missing METADATA are errors (exit 1)"
    )
    check.add_argument("--offline", action="store_true", help="do not connect to IMAP (no METADATA check)")
    sim = command(
        sub, "simulate-call", "play Twilio against a running gateway: one unanswered call", cmd_simulate_call
    )
    sim.add_argument("--from", dest="caller", default="+15550001234", help="caller number ('' = withheld)")
    sim.add_argument("--caller-name", default=None, help="caller name (CNAM)")
    sim.add_argument("--to", default=None, help="called number (default: the first configured number)")
    sim.add_argument("--wav", default=None, help="the recording (default: a sample message)")
    sim.add_argument(
        "--dial-outcome", default="no-answer", choices=["no-answer", "busy", "failed", "completed"]
    )
    sim.add_argument("--wait", type=float, default=30.0, help="seconds to wait for delivery")
