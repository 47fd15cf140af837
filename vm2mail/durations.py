"""Durations as admins type them: ``90m``, ``8h``, ``3d``, ``2w`` (``vm2mail reconcile --since``,
``vm2mail divert/outage --until``)."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta | None:
    """The timedelta ``text`` names (zero included), or None when it is not a duration."""
    match = _DURATION.match(text.strip())
    if match is None:
        return None
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
