"""One Jinja2 environment for e-mail, SMS and spoken-prompt templates, with admin overrides first."""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path

import jinja2


def _shipped_templates() -> Path:
    """The shipped templates: ``vm2mail/templates`` in a wheel, the repository's ``templates/`` in a checkout.

    They live at the repository's top level; setup.py installs them as the package ``vm2mail.templates``.
    """
    installed = Path(str(importlib.resources.files("vm2mail").joinpath("templates")))
    return installed if installed.is_dir() else Path(__file__).resolve().parent.parent / "templates"


SHIPPED_TEMPLATES = _shipped_templates()


def format_duration(seconds: float | int | None) -> str:
    """``83`` → ``1:23`` (minutes:seconds), the way voicemail systems show lengths."""
    if seconds is None:
        return "?"
    total = round(seconds)
    return f"{total // 60}:{total % 60:02d}"


def spell_digits(number: str | None) -> str:
    """``+4930123`` → ``4 9 3 0 1 2 3``: text-to-speech reads a number digit by digit this way."""
    return " ".join(ch for ch in (number or "") if ch.isdigit())


@functools.lru_cache(maxsize=8)
def environment(override: Path | None = None) -> jinja2.Environment:
    """Templates are looked up in ``override`` (the config's ``templates_dir``) first, then shipped."""
    loaders: list[jinja2.BaseLoader] = []
    if override is not None:
        loaders.append(jinja2.FileSystemLoader(str(override)))
    loaders.append(jinja2.FileSystemLoader(str(SHIPPED_TEMPLATES)))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = format_duration
    env.filters["spell_digits"] = spell_digits
    return env


def render(name: str, override: Path | None = None, **context: object) -> str:
    return environment(override).get_template(name).render(**context)


def language_template(kind: str, language: str, name: str, override: Path | None = None) -> str:
    """Path of ``<kind>/<language>/<name>``, falling back to en-US when a language lacks it."""
    env = environment(override)
    for lang in (language, "en-US"):
        candidate = f"{kind}/{lang}/{name}"
        try:
            env.get_template(candidate)
        except jinja2.TemplateNotFound:
            continue
        return candidate
    raise jinja2.TemplateNotFound(f"{kind}/{language}/{name}")
