"""Small per-mailbox state (PIN hashes, lockouts) kept on the IMAP folder as RFC 5464 METADATA entries."""

from __future__ import annotations

import logging
import re
from typing import Any

import aioimaplib
from aioimaplib.aioimaplib import AUTH, SELECTED, Cmd, Exec

from vm2mail.config.model import Mailbox
from vm2mail.mailstore.connection import ImapConnection
from vm2mail.mailstore.folders import quote, wire_mailbox
from vm2mail.mailstore.store import ImapStore, Pool

log = logging.getLogger(__name__)

# RFC 5464 §3.2: "/private/vendor/<vendor-token>/..." is the namespace for a vendor's private entries.
PREFIX = "/private/vendor/vm2mail/"
_NAME = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*(?:/[A-Za-z0-9_\-][A-Za-z0-9_.\-]*)*$")
_LITERAL = re.compile(rb"\{(\d+)\}$")
_QUOTED = re.compile(rb'^\s*"((?:\\.|[^"\\])*)"')

# aioimaplib has no METADATA commands (FIELD-NOTES): register them. Sync execution makes every untagged
# "* METADATA" line, literals included, part of the pending command's response.
for _name in ("GETMETADATA", "SETMETADATA"):
    aioimaplib.aioimaplib.Commands.setdefault(_name, Cmd(_name, (AUTH, SELECTED), Exec.is_sync))


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


def parse_metadata(lines: list[Any], name: str) -> str | None:
    """The value of entry ``name`` from the untagged ``METADATA mailbox (entry value ...)`` lines."""
    wanted = name.lower().encode()
    for index, raw in enumerate(lines):
        line = bytes(raw)
        if not line.upper().startswith(b"METADATA "):
            continue
        position = line.lower().find(wanted)
        if position < 0:
            continue
        rest = line[position + len(wanted) :]
        literal = _LITERAL.search(rest)
        if literal is not None and index + 1 < len(lines):
            return bytes(lines[index + 1]).decode("utf-8", errors="replace")
        quoted = _QUOTED.match(rest)
        if quoted is not None:
            return re.sub(rb"\\(.)", rb"\1", quoted.group(1)).decode("utf-8", errors="replace")
        return None  # NIL: no such entry
    return None


class Metadata:
    """Get and set ``/private/vendor/vm2mail/<name>`` on a mailbox's folder, shared by every gateway.

    Anyone with access to the folder can read private entries (FIELD-NOTES): store hashes, not secrets.
    """

    def __init__(self, store: ImapStore) -> None:
        self.store = store

    async def _execute(self, conn: ImapConnection, what: str, *args: str) -> Any:
        proto = conn.client.protocol
        if "METADATA" not in proto.capabilities:
            raise conn.error(
                "server lacks METADATA (RFC 5464); enable imap_metadata in Dovecot", broken=False
            )
        command = aioimaplib.Command(what, proto.new_tag(), *args, loop=proto.loop)
        return await conn.command(proto.execute(command), what)

    async def get(self, mailbox: Mailbox, name: str) -> str | None:
        """The entry's value, or None when it is not set."""
        full = entry_name(name)

        async def op(conn: ImapConnection, pool: Pool) -> str | None:
            await self.store.ensure_folder(conn, pool, mailbox.folder)
            folder = wire_mailbox(mailbox.folder, conn.delimiter)
            response = await self._execute(conn, "GETMETADATA", folder, full)
            return parse_metadata(list(response.lines[:-1]), full)

        return await self.store.run(mailbox, op)

    async def set(self, mailbox: Mailbox, name: str, value: str | None) -> None:
        """Set the entry (None deletes it)."""
        full, wire_value = entry_name(name), _value_string(value)

        async def op(conn: ImapConnection, pool: Pool) -> None:
            await self.store.ensure_folder(conn, pool, mailbox.folder)
            folder = wire_mailbox(mailbox.folder, conn.delimiter)
            await self._execute(conn, "SETMETADATA", folder, f"({full} {wire_value})")
            log.debug(
                "IMAP %s: %s metadata %s for %s",
                conn.where,
                "deleted" if value is None else "set",
                name,
                mailbox.id,
            )

        await self.store.run(mailbox, op)
