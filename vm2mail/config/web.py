"""The ``web:`` section of the YAML: the browser inbox under /inbox/ (vm2mail.web)."""

from __future__ import annotations

from typing import Any

from vm2mail.config.model import WebConfig
from vm2mail.config.schema import Section
from vm2mail.config.yamlsource import Source


def _between(low: int, high: int) -> Any:
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"must be between {low} and {high}"

    return check


def web(source: Source, data: Any) -> WebConfig:
    """``web: {enabled, session_minutes, page_size}``; every key optional."""
    s = Section(source, "web", data)
    config = WebConfig(
        enabled=s.get("enabled", bool, True),
        # A stolen cookie is good until it expires (or "log out everywhere"): at most a week.
        session_minutes=s.get("session_minutes", int, 8 * 60, _between(5, 7 * 24 * 60)),
        page_size=s.get("page_size", int, 50, _between(5, 500)),
    )
    s.done()
    return config
