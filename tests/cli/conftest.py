"""CLI tests run ``vm2mail`` as an admin does: a subprocess of this interpreter, against real components."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import dataclass

from tests.e2e.conftest import stack  # noqa: F401  (the e2e stack factory: Dovecot accounts, keys, fake Twilio)

VM2MAIL = (sys.executable, "-m", "vm2mail")


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def cli(*args: str, input: str | None = None) -> Result:
    """Run ``vm2mail ARGS`` and wait; stdin is ``input`` (or empty, never a terminal)."""
    done = subprocess.run(
        [*VM2MAIL, *args], input=input or "", capture_output=True, text=True, check=False, timeout=300
    )
    return Result(done.returncode, done.stdout, done.stderr)


async def acli(*args: str, input: str | None = None) -> Result:
    """``cli`` from inside an event loop (while a fake Twilio or a gateway runs in it)."""
    proc = await asyncio.create_subprocess_exec(
        *VM2MAIL,
        *args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate((input or "").encode()), 300)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())
