"""Configuration: one YAML file loaded into frozen, keyword-only dataclasses.

Layer: base. May import: errors and pinhash only.
"""

from vm2mail.config.loader import load_config
from vm2mail.config.model import (
    Config,
    Defaults,
    GpgConfig,
    ImapConfig,
    Mailbox,
    ServerConfig,
    TwilioConfig,
)

__all__ = [
    "Config",
    "Defaults",
    "GpgConfig",
    "ImapConfig",
    "Mailbox",
    "ServerConfig",
    "TwilioConfig",
    "load_config",
]
