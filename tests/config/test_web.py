"""The ``web:`` section: defaults, values, and mistakes reported with file, line and key path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from vm2mail.config import Config
from vm2mail.errors import ConfigError


def test_web_defaults_and_values(make_config: Callable[..., Config]) -> None:
    default = make_config()
    assert (default.web.enabled, default.web.session_minutes, default.web.page_size) == (True, 480, 50)
    chosen = make_config(web={"enabled": False, "session_minutes": 60, "page_size": 20})
    assert (chosen.web.enabled, chosen.web.session_minutes, chosen.web.page_size) == (False, 60, 20)


@pytest.mark.parametrize(
    ("web", "expected"),
    [
        ({"session_minutes": 0}, "web.session_minutes: must be between 5 and 10080"),
        ({"page_size": 10_000}, "web.page_size: must be between 5 and 500"),
        ({"enabled": "yes"}, "web.enabled: 'yes' must be bool"),
        ({"cookie_name": "x"}, "web.cookie_name: unknown key"),
    ],
)
def test_web_mistakes_name_the_key(
    make_config: Callable[..., Config], web: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(web=web)
    [problem] = [p for p in caught.value.problems if "web." in p]
    assert problem.endswith(expected), problem
    assert ".yaml:" in problem  # file and line first
