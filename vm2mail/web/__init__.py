"""The web inbox under /inbox/: browser access to the same IMAP folders as the mail client and the menu.

Layer: edges. May import: core, services, config, errors and the base modules; for now also the
phone edges' login lockouts (menu.login), SMS replies (smtp.replies) and playback (telephony.media),
which should move down into the core.
"""

from vm2mail.web.deps import WebDeps
from vm2mail.web.routes import add_web_routes

__all__ = ["WebDeps", "add_web_routes"]
