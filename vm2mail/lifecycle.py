"""Runs the gateway's event loop so that SIGTERM ends the process within seconds, whatever hangs.

``asyncio.run`` waits without limit for every task to finish its cancellation and for every executor
thread to return: one task that swallows its cancellation (an IMAP client library's reconnect loop,
issue 15) or one blocking call in a thread would keep the process alive until systemd's SIGKILL.
Here each phase has a deadline; what is still running after it is logged and left behind, and the
process exits anyway. Nothing is lost by that: the spool holds every acknowledged job, and ``serve``
has given this process's claimed jobs back to ``new/`` before the loop ends.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

STOP_SECONDS = 5.0  # from SIGTERM to exit; docker stop waits 10 s, systemd 30 s before SIGKILL
LEFTOVER_SECONDS = 1.0  # for tasks still running once ``serve`` has returned


def run_service(main: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run(main)`` with bounded cleanup; exits the process at once if something is stuck."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    stuck: list[str] = []
    failed = True  # until main returns: a forced exit must not turn a failed start into status 0
    try:
        loop.run_until_complete(main)
        failed = False
    finally:
        try:
            stuck = _cancel_leftovers(loop)
            loop.run_until_complete(asyncio.wait_for(loop.shutdown_asyncgens(), LEFTOVER_SECONDS))
        except (TimeoutError, RuntimeError) as exc:
            stuck.append(f"async generators ({exc!r})")
        finally:
            busy = _busy_threads()
            if stuck or busy:
                # A clean interpreter exit would join these threads and wait for these tasks forever.
                log.error("exiting although still running: %s", ", ".join(stuck + busy))
                logging.shutdown()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(1 if failed else 0)
            loop.run_until_complete(loop.shutdown_default_executor())
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> list[str]:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if not tasks:
        return []
    _, pending = loop.run_until_complete(asyncio.wait(tasks, timeout=LEFTOVER_SECONDS))
    for task in tasks - pending:
        if not task.cancelled() and task.exception() is not None:
            log.warning("task %s ended with %r while stopping", task.get_name(), task.exception())
    return [f"task {task.get_name()}" for task in pending]


def _busy_threads() -> list[str]:
    """Non-daemon threads other than this one (executor workers still inside a blocking call)."""
    current = threading.current_thread()
    return [
        f"thread {t.name}"
        for t in threading.enumerate()
        if t is not current and not t.daemon and t.is_alive() and _working(t)
    ]


def _working(thread: threading.Thread) -> bool:
    """An idle executor worker waits on its queue and ends with the executor; one inside a work item
    (``_WorkItem.run``) is in a blocking call. Any other thread counts as busy."""
    frame = sys._current_frames().get(thread.ident or -1)
    executor = False
    while frame is not None:
        if "concurrent/futures/thread" in frame.f_code.co_filename:
            executor = True
            if frame.f_code.co_name == "run":
                return True
        frame = frame.f_back
    return not executor
