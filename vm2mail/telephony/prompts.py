"""Spoken prompts rendered from the per-language templates under ``templates/prompts/<language>/``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vm2mail.config.model import Config, Mailbox
from vm2mail.templating import language_template, render

# Template names (``templates/prompts/<language>/<name>``); admins override them in ``templates_dir``.
GREETING = "greeting.j2"
GOODBYE = "goodbye.j2"
THANKS = "thanks.j2"
NOT_IN_SERVICE = "not-in-service.j2"
TOO_SHORT = "recording-too-short.j2"
MAILBOX_FULL = "mailbox-full.j2"

# Twilio <Say> accepts at most 4,096 characters per verb
# (https://www.twilio.com/docs/voice/twiml/say#attributes); a runaway template must not break the call.
_MAX_SAY_CHARS = 4096


@dataclass(frozen=True, kw_only=True)
class Prompt:
    """One ``<Say>``: the text, its BCP 47 language (Twilio ``language``) and an optional ``voice``."""

    text: str
    language: str
    # Twilio default voice when None; e.g. "Polly.Vicki" or "Google.de-DE-Standard-A" once configurable
    # (https://www.twilio.com/docs/voice/twiml/say/text-speech#available-voices-and-languages).
    voice: str | None = None


def render_prompt(
    name: str,
    language: str,
    context: Mapping[str, object],
    *,
    override: Path | None = None,
    voice: str | None = None,
) -> Prompt:
    """Render prompt ``name`` in ``language`` (falling back to en-US) with whitespace collapsed."""
    template = language_template("prompts", language, name, override)
    text = " ".join(render(template, override, **context).split())
    if not text:
        raise ValueError(f"prompt template {template} rendered empty text")
    # Speak the language the text was actually written in: a missing de-DE template falls back to
    # en-US text, which a German voice would mispronounce.
    spoken_language = template.split("/")[1]
    return Prompt(text=text[:_MAX_SAY_CHARS], language=spoken_language, voice=voice)


def mailbox_prompt(config: Config, mailbox: Mailbox, name: str, **context: object) -> Prompt:
    """A prompt in the mailbox's language with the mailbox in the template context."""
    return render_prompt(
        name, mailbox.language, {**context, "mailbox": mailbox}, override=config.templates_dir
    )


def service_prompt(config: Config, name: str, **context: object) -> Prompt:
    """A prompt for calls that reach no mailbox, in the configured default language."""
    return render_prompt(name, config.defaults.language, context, override=config.templates_dir)
