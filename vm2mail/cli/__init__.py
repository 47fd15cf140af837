"""The ``vm2mail`` admin command; exit codes: 0 success, 1 bad input or problems found, 2 wrong usage.

Layer: top. May import anything below (edges through the composition root ``vm2mail.app``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from vm2mail import __version__
from vm2mail.cli import keys as keys
from vm2mail.cli import migrate as migrate
from vm2mail.cli import pin as pin
from vm2mail.cli import pins as pins
from vm2mail.cli import reconcile as reconcile
from vm2mail.cli import reload as reload
from vm2mail.cli import routing as routing
from vm2mail.cli import serve as serve
from vm2mail.cli import spool as spool
from vm2mail.cli import status as status
from vm2mail.cli.common import PROBLEMS
from vm2mail.errors import ConfigError, Vm2mailError

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vm2mail", description=__doc__)
    p.add_argument("--version", action="version", version=f"vm2mail {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (serve, status, spool, keys, pin, pins, reconcile, migrate, reload, routing):
        module.register(sub)
    return p


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # `kill`, systemd stopping a timer's command: stop as Ctrl-C does


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)  # usage errors: argparse prints them and exits 2
    # Commands that deliver give their claimed jobs back on SIGTERM too; serve has its own shutdown.
    if args.command != "serve" and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)  # signal.signal works in the main thread only
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return PROBLEMS
    except Vm2mailError as exc:
        print(f"vm2mail: {exc}", file=sys.stderr)
        return PROBLEMS
    except KeyboardInterrupt:
        print("vm2mail: interrupted", file=sys.stderr)
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
