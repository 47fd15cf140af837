"""The web inbox under /inbox/: browser access to the same IMAP folders as the mail client and the menu."""

from vm2mail.web.deps import WebDeps
from vm2mail.web.routes import add_web_routes

__all__ = ["WebDeps", "add_web_routes"]
