"""The one retry delay formula: capped exponential backoff with jitter, for jobs and reconnects alike."""

from __future__ import annotations

import random


def backoff(attempt: int, *, first: float, cap: float) -> float:
    """``first``, then doubled per further attempt up to ``cap``, times a ±20 % jitter.

    ``attempt`` counts from 1 (0 is treated as 1). The jitter spreads retries of many jobs or sessions
    that failed together, so a server coming back is not hit by all of them at the same instant.
    """
    return float(min(cap, first * 2 ** max(0, attempt - 1)) * random.uniform(0.8, 1.2))
