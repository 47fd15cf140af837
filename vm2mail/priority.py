"""Run the pipeline's batch work (encoding, encryption) below the front doors' CPU priority.

On a small machine the workers' ffmpeg and gpg processes and the compose thread compete with the
event loop that answers Twilio webhooks and SMTP clients; at niceness 10 the kernel runs the loop
first, so a 204 or a 250 is not held up by a voicemail being encoded.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

log = logging.getLogger(__name__)

NICENESS = 10
MAX_NICENESS = 19
P = ParamSpec("P")
T = TypeVar("T")

_warned = False


def lower_priority(pid: int = 0) -> bool:
    """Lower a process's (0: the calling thread's) CPU priority by NICENESS; never raises.

    Priority is a nicety, never a reason to fail a job: a sandbox may deny setpriority (a systemd
    ``SystemCallFilter=~@resources`` answers EPERM) and the process may already be gone. Linux keeps
    niceness per thread, so 0 lowers only this thread, and children it starts inherit the value.
    There is no ``preexec_fn`` any more: running Python between fork and exec is unsafe in a threaded
    process (subprocess documents it), and an exception there failed every encoding.
    """
    global _warned
    try:
        current = os.getpriority(os.PRIO_PROCESS, pid)
        os.setpriority(os.PRIO_PROCESS, pid, min(current + NICENESS, MAX_NICENESS))
    except OSError as exc:
        if not _warned:
            _warned = True
            log.info("cannot lower the priority of batch work (%s); it runs at normal priority", exc)
        return False
    return True


_executor: ThreadPoolExecutor | None = None


def _batch_executor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="batch", initializer=lower_priority)
    return _executor


async def run_batch(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Like ``asyncio.to_thread``, on a low-priority thread; gpg started there inherits the priority."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    return await loop.run_in_executor(_batch_executor(), call)
