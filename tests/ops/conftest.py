"""The e2e ``stack`` factory, shared with the operations tests (reload, health, metrics, logs)."""

from tests.e2e.conftest import stack

__all__ = ["stack"]
