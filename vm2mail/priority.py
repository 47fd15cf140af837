"""Run the pipeline's batch work (encoding, encryption) below the front doors' CPU priority.

On a small machine the workers' ffmpeg and gpg processes and the compose thread compete with the
event loop that answers Twilio webhooks and SMTP clients; at niceness 10 the kernel runs the loop
first, so a 204 or a 250 is not held up by a voicemail being encoded.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

NICENESS = 10
P = ParamSpec("P")
T = TypeVar("T")


def lower_priority() -> None:
    """Lower the calling thread's priority (Linux: niceness is per thread and inherited by children).

    Also the ``preexec_fn`` of subprocesses: it runs in the child before exec, and nice() is safe there.
    """
    os.nice(NICENESS)


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
