"""The web inbox under /inbox/: browser access to the same IMAP folders as the mail client and the menu.

Layer: edges. May import: core (login lockouts in logins, SMS replies in replies, audio in playback,
all shared with the phone edges), services, config, errors and the base modules; never another edge.
"""

from vm2mail.web.deps import WebDeps
from vm2mail.web.routes import add_web_routes

__all__ = ["WebDeps", "add_web_routes"]
