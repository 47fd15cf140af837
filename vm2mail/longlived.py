"""Long-lived bulk data kept out of the cyclic garbage collector's full passes.

CPython 3.11's full (generation 2) collection walks every tracked object in one go, with the event
loop stopped. A gateway that knows 100,000 voicemails holds 100,000 ``Entry`` objects, and each full
pass over them stalled the loop for 60-120 ms on a 2-core machine (bench/watch.py). Those entries live
as long as their folder view, so once a big folder's first sync has built them, ``settle`` moves
everything alive into the permanent generation (``gc.freeze``), where no later pass looks.

What that costs, measured (bench/watch.py, 300 accounts of which 10 with 10,000 voicemails): a frozen
object that dies through reference counting is freed as usual, but a reference cycle among frozen
objects is never reclaimed. The IMAP connections open at a freeze are such cycles: when they are
replaced (a reconnect) about 40 objects of each stay, 3 MB for 300 connections, once. Connections
opened afterwards are collected normally. Small installations never reach ``MIN_OBJECTS`` and never
freeze.
"""

from __future__ import annotations

import gc

MIN_OBJECTS = 1000  # below this a full pass costs well under a millisecond: nothing to gain


def settle(count: int) -> None:
    """``count`` long-lived objects were just made: keep them (and all else alive) out of full passes."""
    if count < MIN_OBJECTS:
        return
    gc.collect(1)  # the young generations' garbage first (a few thousand objects at most): not frozen
    gc.freeze()


def settle_start() -> None:
    """The service has started: its modules, templates and configuration live until it exits."""
    gc.collect()  # before any call or IMAP traffic: this one full pass stalls nothing
    gc.freeze()
