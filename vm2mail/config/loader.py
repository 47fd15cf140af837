"""Placeholder: the YAML loader is being written."""

from __future__ import annotations

from pathlib import Path

from vm2mail.config.model import Config


def load_config(path: Path) -> Config:
    raise NotImplementedError(str(path))
