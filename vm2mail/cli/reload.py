"""``vm2mail reload``: validate the YAML, then ask the running gateway to re-read it (SIGHUP)."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from vm2mail.cli.common import OK, Subparsers, command, load_unchecked
from vm2mail.cli.serve import mailbox_warnings
from vm2mail.errors import Vm2mailError
from vm2mail.pipeline.batch import PID_FILE, gateway_pid


def cmd_reload(args: argparse.Namespace) -> int:
    # A bad file is refused here already (file:line errors, exit 1); the gateway checks it again itself
    # and keeps its running configuration if the file changed in between. Like SIGHUP, an unusable
    # key is a warning: the gateway runs with it (that mailbox's voicemails wait in the spool).
    config = load_unchecked(args.config)
    for line in mailbox_warnings(config, imap=False):
        print(f"WARNING: {line}", file=sys.stderr)
    pid = gateway_pid(config)
    if pid is None:
        raise Vm2mailError(
            f"no running gateway: {config.server.spool_dir / PID_FILE} is missing or names no live process"
        )
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        raise Vm2mailError(f"cannot signal gateway pid {pid}: {exc.strerror}") from exc
    print(f"sent SIGHUP to the gateway (pid {pid}); it applies {args.config} to new calls and jobs")
    return OK


def register(sub: Subparsers) -> None:
    command(
        sub,
        "reload",
        "check the configuration and make the running gateway load it (SIGHUP to the pid in the spool)",
        cmd_reload,
    )
