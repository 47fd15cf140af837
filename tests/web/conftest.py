"""The web inbox tests reuse the end-to-end ``stack`` factory (Dovecot accounts, keys, fake Twilio)."""

from tests.e2e.conftest import stack

__all__ = ["stack"]
