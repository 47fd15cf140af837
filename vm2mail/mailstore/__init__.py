"""The mail store: the gateway's IMAP access (pooled connections, idempotent delivery, folder names).

Layer: services. May import: config, errors, the base modules and the audio service (greetings are
transcoded on upload); never core or edges.
"""

from __future__ import annotations

from vm2mail.mailstore.connection import ImapConnection
from vm2mail.mailstore.folders import decode_mailbox, encode_mailbox, quote, wire_mailbox
from vm2mail.mailstore.store import ImapStore

__all__ = ["ImapConnection", "ImapStore", "decode_mailbox", "encode_mailbox", "quote", "wire_mailbox"]
