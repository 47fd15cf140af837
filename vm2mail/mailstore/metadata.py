"""Small per-mailbox state (PIN hashes, lockouts) kept on the IMAP folder as RFC 5464 METADATA entries."""

from __future__ import annotations

import logging
import re

from vm2mail.config.model import Mailbox
from vm2mail.mailstore.connection import ImapConnection
from vm2mail.mailstore.folders import quote
from vm2mail.mailstore.store import ImapStore, Pool

log = logging.getLogger(__name__)

# RFC 5464 §3.2: "/private/vendor/<vendor-token>/..." is the namespace for a vendor's private entries.
PREFIX = "/private/vendor/vm2mail/"
_NAME = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*(?:/[A-Za-z0-9_\-][A-Za-z0-9_.\-]*)*$")


def entry_name(name: str) -> str:
    """The full entry name for ``name``; ValueError for names that are not plain path components."""
    if not _NAME.match(name):
        raise ValueError(f"bad metadata name {name!r}")
    return PREFIX + name


def _value_string(value: str | None) -> str:
    """RFC 5464 §4.3 value: NIL deletes; otherwise a quoted string (printable ASCII: hashes, JSON)."""
    if value is None:
        return "NIL"
    if not value.isascii() or not value.isprintable():
        raise ValueError("metadata values must be printable ASCII")
    return quote(value)


class Metadata:
    """Get and set ``/private/vendor/vm2mail/<name>`` on a mailbox's folder, shared by every gateway.

    Anyone with access to the folder can read private entries (FIELD-NOTES): store hashes, not secrets.
    """

    def __init__(self, store: ImapStore) -> None:
        self.store = store

    async def get(self, mailbox: Mailbox, name: str) -> str | None:
        """The entry's value, or None when it is not set."""
        full = entry_name(name)

        async def op(conn: ImapConnection, pool: Pool) -> str | None:
            await self.store.ensure_folder(conn, pool, mailbox.folder)
            return await conn.get_metadata(mailbox.folder, full)

        return await self.store.run(mailbox, op)

    async def set(self, mailbox: Mailbox, name: str, value: str | None) -> None:
        """Set the entry (None deletes it)."""
        full, wire_value = entry_name(name), _value_string(value)

        async def op(conn: ImapConnection, pool: Pool) -> None:
            await self.store.ensure_folder(conn, pool, mailbox.folder)
            await conn.set_metadata(mailbox.folder, full, wire_value)
            log.debug(
                "IMAP %s: %s metadata %s for %s",
                conn.where,
                "deleted" if value is None else "set",
                name,
                mailbox.id,
            )

        await self.store.run(mailbox, op)
