"""Routing scenarios reuse the e2e stack (Dovecot accounts, keys, the Twilio stand-in) and the menu walker."""

from __future__ import annotations

from tests.e2e.conftest import stack  # noqa: F401 - the e2e stack factory
from tests.menu.conftest import menu_env  # noqa: F401 - the phone-menu factory
