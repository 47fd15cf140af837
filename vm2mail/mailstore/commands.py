"""The IMAP commands the gateway uses, typed: what the rest of the package calls instead of aioimaplib.

``ImapConnection`` (``mailstore.connection``) owns aioimaplib, its session and its workarounds; this
mixin gives it one method per command, each returning parsed values from ``mailstore.protocol``.
Nothing outside these two modules and the protocol module touches aioimaplib or a response line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import aioimaplib
from aioimaplib.aioimaplib import AUTH, SELECTED, Cmd, Exec

from vm2mail.errors import MailStoreError
from vm2mail.mailstore.folders import wire_mailbox
from vm2mail.mailstore.protocol import (
    Fetched,
    ListItem,
    PushKind,
    Status,
    append_uid,
    classify_push,
    copy_uids,
    modified,
    parse_fetch,
    parse_list,
    parse_metadata,
    parse_search,
    parse_status,
    parse_vanished,
    status_text,
    untagged,
)

log = logging.getLogger("vm2mail.mailstore.connection")
T = TypeVar("T")
# UIDs per FETCH in uid_fetch_ranges. aioimaplib copies the rest of each socket read once per line, so
# its cost grows with the square of the read size; replies of ~50 messages (~20 KB) keep reads small,
# and the extra round trips cost less than that copying (measured on 10,000 messages).
RANGE = 50

# aioimaplib has no METADATA commands (FIELD-NOTES): register them. Sync execution makes every untagged
# "* METADATA" line, literals included, part of the pending command's response.
for _name in ("GETMETADATA", "SETMETADATA"):
    aioimaplib.aioimaplib.Commands.setdefault(_name, Cmd(_name, (AUTH, SELECTED), Exec.is_sync))
# RFC 7162 §3.2.6: ``UID FETCH ... (CHANGEDSINCE m VANISHED)`` answers with FETCH and ``VANISHED
# (EARLIER)`` lines. aioimaplib hands an async command only the untagged lines named like it, so the
# VANISHED ones would be dropped; under this table name the command runs sync, and every untagged line
# of its reply becomes part of its response (on the wire it reads "tag UID FETCH ...").
aioimaplib.aioimaplib.Commands.setdefault("UID FETCH", Cmd("UID FETCH", (SELECTED,), Exec.is_sync))


class ImapCommands:
    """One typed method per IMAP command; mixed into ImapConnection, which supplies ``command``."""

    if TYPE_CHECKING:  # supplied by ImapConnection
        client: Any
        delimiter: str | None
        selected: str | None
        qresync: bool
        login: str
        _lost: asyncio.Event

        @property
        def where(self) -> str: ...

        @property
        def alive(self) -> bool: ...

        def error(self, message: str, *, broken: bool = True) -> MailStoreError: ...

        async def guard(self, awaitable: Awaitable[T], what: str) -> T: ...

        async def command(
            self, awaitable: Awaitable[Any], what: str, *, ok: tuple[str, ...] = ("OK",)
        ) -> Any: ...

        def has_capability(self, name: str) -> bool: ...

    async def execute(
        self, name: str, *args: str, what: str, ok: tuple[str, ...] = ("OK",), **kw: Any
    ) -> Any:
        """A command as a plain aioimaplib Command (unknown to aioimaplib, or better without its parser)."""
        proto = self.client.protocol
        command = aioimaplib.Command(name, proto.new_tag(), *args, loop=proto.loop, **kw)
        return await self.command(proto.execute(command), what, ok=ok)

    async def noop(self) -> list[PushKind]:
        """NOOP (RFC 3501 §6.1.2): lets the server report changes; what its pushes mean.

        An untagged NO/BAD/BYE (the selected folder was deleted under us) raises: only a new session
        gets out of that state.
        """
        response = await self.command(self.client.noop(), "NOOP")
        lines = untagged(response)
        self.check_trouble(lines)
        return [classify_push(line) for line in lines]

    def check_trouble(self, lines: list[bytes]) -> None:
        for line in lines:
            if classify_push(line) == "trouble":
                raise self.error(
                    f"server says {line.decode('utf-8', 'replace')[:200]!r}; starting a new session"
                )

    async def create(self, folder: str, *, strict: bool = True, subscribe: bool = True) -> bool:
        """CREATE and SUBSCRIBE ``folder`` (RFC 3501 §6.3.3, §6.3.6); False when it was there already.

        With ``strict`` a refusal other than RFC 5530 ``[ALREADYEXISTS]`` (permissions, invalid name)
        raises MailStoreError.
        """
        name = wire_mailbox(folder, self.delimiter)
        response = await self.command(self.client.create(name), f"CREATE {folder!r}", ok=("OK", "NO"))
        if response.result == "OK":
            if subscribe:  # CREATE does not subscribe; mail clients show only subscribed folders
                await self.command(self.client.subscribe(name), f"SUBSCRIBE {folder!r}")
            log.info("IMAP %s: created folder %r for %s", self.where, folder, self.login)
            return True
        if strict and "ALREADYEXISTS" not in status_text(response).upper():
            raise self.error(f"CREATE {folder!r} failed: {status_text(response)}", broken=False)
        return False

    async def select(self, folder: str, *, missing_ok: bool = False) -> bool:
        """SELECT ``folder`` (RFC 3501 §6.3.1); False (with ``missing_ok``) when the server says NO."""
        self.selected = None
        name = wire_mailbox(folder, self.delimiter)
        ok = ("OK", "NO") if missing_ok else ("OK",)
        response = await self.command(self.client.select(name), f"SELECT {folder!r}", ok=ok)
        if response.result != "OK":
            return False
        self.selected = folder
        return True

    async def status(
        self, folder: str, *, missing_ok: bool = False, incomplete_breaks: bool = False
    ) -> Status | None:
        """STATUS (RFC 3501 §6.3.10) with HIGHESTMODSEQ when the server has CONDSTORE (RFC 7162).

        None (with ``missing_ok``) when the folder does not exist. A reply without UIDVALIDITY or
        MESSAGES raises; ``incomplete_breaks`` also drops the connection (the folder vanished).
        """
        items = "MESSAGES UIDNEXT UIDVALIDITY" + (
            " HIGHESTMODSEQ" if self.has_capability("CONDSTORE") else ""
        )
        response = await self.command(
            self.client.status(wire_mailbox(folder, self.delimiter), f"({items})"),
            f"STATUS {folder!r}",
            ok=("OK", "NO") if missing_ok else ("OK",),
        )
        if response.result != "OK":
            return None
        status = parse_status(untagged(response))
        if status is None:
            raise self.error(f"STATUS {folder!r}: no UIDVALIDITY/MESSAGES in reply", broken=incomplete_breaks)
        return status

    async def uid_fetch(self, uids: str, items: str) -> dict[int, Fetched]:
        """``UID FETCH uids items`` (RFC 3501 §6.4.8), by message UID.

        aioimaplib's own FetchCommand rescans every line received so far after each new line (quadratic:
        18 s and event-loop stalls of 1.5 s for 10,000 messages); a plain Command collects the lines and
        literals just as well, and ``parse_fetch`` reads them in one pass.
        """
        response = await self.execute(
            "FETCH", uids, items, what="UID FETCH", prefix="UID", untagged_resp_name="FETCH"
        )
        return parse_fetch(untagged(response))

    async def uid_fetch_changed(self, uids: str, modseq: int) -> tuple[dict[int, Fetched], set[int] | None]:
        """Flags of the messages in ``uids`` changed since ``modseq`` (RFC 7162 §3.1.4 CHANGEDSINCE), and
        with QRESYNC enabled the UIDs among them expunged since (§3.2.6 VANISHED); else None for those."""
        if not self.qresync:
            return await self.uid_fetch(uids, f"(UID FLAGS) (CHANGEDSINCE {modseq})"), None
        response = await self.execute(
            "UID FETCH", uids, "(UID FLAGS)", f"(CHANGEDSINCE {modseq} VANISHED)", what="UID FETCH VANISHED"
        )
        lines = untagged(response)
        return parse_fetch(lines), parse_vanished(lines)

    async def uid_fetch_all(
        self, items: str, uidnext: int, *, first: int = 1, chunk: int = RANGE
    ) -> dict[int, Fetched]:
        """Every message of the selected folder from UID ``first`` on (see ``uid_fetch_ranges``)."""
        records: dict[int, Fetched] = {}
        async for part in self.uid_fetch_ranges(items, uidnext, first=first, chunk=chunk):
            records.update(part)
        return records

    async def uid_fetch_ranges(
        self, items: str, uidnext: int, *, first: int = 1, chunk: int = RANGE
    ) -> AsyncIterator[dict[int, Fetched]]:
        """The messages from UID ``first`` on, one UID range of ``chunk`` at a time.

        One ``UID FETCH 1:*`` of 10,000 messages arrives as megabytes that aioimaplib handles in a few
        long callbacks (its line splitting copies the rest of each read), stalling the event loop for
        up to a second; ranges keep each reply small, and the loop runs other work between them (as
        does the caller, when it digests each range before asking for the next).
        ``uidnext`` (from STATUS) bounds the ranges; the last one is open (``n:*``) for late arrivals.
        """
        while True:
            last = first + chunk - 1
            if last + 1 >= uidnext:
                # "n:*" always names the highest UID (RFC 3501 §6.4.8): keep only those in range.
                tail = await self.uid_fetch(f"{first}:*", items)
                yield {u: r for u, r in tail.items() if u >= first}
                return
            yield await self.uid_fetch(f"{first}:{last}", items)
            first = last + 1

    async def uid_search(self, *criteria: str) -> list[int]:
        """``UID SEARCH criteria`` (RFC 3501 §6.4.4); SEARCH or ESEARCH (RFC 4731) answers alike."""
        response = await self.command(self.client.uid_search(*criteria, charset=None), "UID SEARCH")
        return parse_search(untagged(response))

    async def uid_store(
        self,
        uids: str,
        change: str,
        flags: tuple[str, ...] | list[str],
        *,
        unchanged_since: int | None = None,
        refused_ok: bool = False,
    ) -> bool:
        """``UID STORE uids [(UNCHANGEDSINCE m)] change (flags)``; False when not applied everywhere.

        False means RFC 7162 §3.1.3 ``[MODIFIED ...]`` (a conditional store lost a race) or, with
        ``refused_ok``, a NO from the server.
        """
        condition = (f"(UNCHANGEDSINCE {unchanged_since})",) if unchanged_since is not None else ()
        ok = ("OK", "NO") if refused_ok else ("OK",)
        response = await self.command(
            self.client.uid("store", uids, *condition, change, f"({' '.join(flags)})"), "UID STORE", ok=ok
        )
        if response.result != "OK":
            log.warning("IMAP %s: UID STORE refused: %s", self.where, status_text(response))
            return False
        return not modified(response.lines)

    async def uid_move(self, uids: str, folder: str) -> dict[int, int]:
        """``UID MOVE`` (RFC 6851); source UID -> new UID where the server says (RFC 4315 COPYUID)."""
        target = wire_mailbox(folder, self.delimiter)
        response = await self.command(self.client.uid("move", uids, target), "UID MOVE")
        return copy_uids(response.lines)

    async def uid_expunge(self, uids: str) -> None:
        """``UID EXPUNGE`` (RFC 4315 §2.1): removes only these \\Deleted messages."""
        await self.command(self.client.uid("expunge", uids), "UID EXPUNGE")

    async def append(
        self, folder: str, message: bytes, *, flags: tuple[str, ...] = (), date: datetime | None = None
    ) -> int | None:
        """APPEND (RFC 3501 §6.3.11); the new UID when the server has UIDPLUS (RFC 4315)."""
        response = await self.command(
            self.client.append(
                message,
                mailbox=wire_mailbox(folder, self.delimiter),
                flags=f"({' '.join(flags)})" if flags else None,
                date=date,
            ),
            f"APPEND to {folder!r}",
        )
        return append_uid(response.lines)

    async def list_folders(self, *, special_use: bool = False) -> list[ListItem]:
        """Every folder (LIST "" "*"); only those with a special use (RFC 6154 §5.1) if asked and offered."""
        if special_use and self.has_capability("SPECIAL-USE"):
            response = await self.execute("LIST", "(SPECIAL-USE)", '""', '"*"', what="LIST (SPECIAL-USE)")
        else:
            response = await self.command(self.client.list('""', '"*"'), "LIST")
        return parse_list(untagged(response))

    async def special_trash(self) -> str | None:
        """The account's ``\\Trash`` folder by its RFC 6154 SPECIAL-USE attribute, or None."""
        for item in await self.list_folders(special_use=True):
            if any(flag.lower() == "\\trash" for flag in item.flags):
                delimiter = item.delimiter
                return item.name.replace(delimiter, "/") if delimiter and delimiter != "/" else item.name
        return None

    async def get_metadata(self, folder: str, entry: str) -> str | None:
        """GETMETADATA (RFC 5464 §4.2) of one entry on ``folder``; None when it is not set."""
        response = await self._metadata("GETMETADATA", wire_mailbox(folder, self.delimiter), entry)
        return parse_metadata(untagged(response), entry)

    async def set_metadata(self, folder: str, entry: str, wire_value: str) -> None:
        """SETMETADATA (RFC 5464 §4.3); ``wire_value`` is a quoted string or NIL."""
        await self._metadata("SETMETADATA", wire_mailbox(folder, self.delimiter), f"({entry} {wire_value})")

    async def _metadata(self, what: str, *args: str) -> Any:
        if "METADATA" not in self.client.protocol.capabilities:
            raise self.error(
                "server lacks METADATA (RFC 5464); enable imap_metadata in Dovecot", broken=False
            )
        return await self.execute(what, *args, what=what)

    async def idle(self, seconds: float, wake: asyncio.Event) -> str:
        """IDLE (RFC 2177) until a push that may mean a change, ``wake`` is set or ``seconds`` pass.

        Returns "change", "expunge" (EXPUNGE/VANISHED pushed, or a push aioimaplib could not hand
        over), "woken" or "timeout". Pushes are only hints (aioimaplib drops some, FIELD-NOTES): the
        caller resynchronises after any of them.
        """
        queue: asyncio.Queue[Any] = self.client.protocol.idle_queue
        while not queue.empty():  # leftovers of an earlier IDLE
            queue.get_nowait()
        idle = await self.guard(self.client.idle_start(timeout=seconds + 60), "IDLE")
        deadline = time.monotonic() + seconds
        outcome = "timeout"
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                waiters = {
                    asyncio.ensure_future(queue.get()): "push",
                    asyncio.ensure_future(wake.wait()): "woken",
                    asyncio.ensure_future(self._lost.wait()): "lost",
                }
                done, pending = await asyncio.wait(
                    waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                for task in pending:
                    task.cancel()
                what = {waiters[t] for t in done}
                if "lost" in what:
                    # FIELD-NOTES: after BYE during IDLE the idle future never completes.
                    raise self.error("connection lost during IDLE")
                if "woken" in what:
                    outcome = "woken"
                    break
                if not done:
                    continue  # the IDLE period is over
                push = next(t.result() for t in done if waiters[t] == "push")
                if not isinstance(push, list):
                    outcome = "expunge"  # aioimaplib's STOP_WAIT_SERVER_PUSH or anything unexpected
                    break
                lines = [bytes(line) for line in push]
                kinds = {classify_push(line) for line in lines}
                if kinds - {"keepalive"}:
                    self.check_trouble(lines)
                    outcome = "expunge" if "expunge" in kinds else "change"
                    break
        finally:
            if self.alive:
                self.client.idle_done()
        response = await self.guard(idle, "IDLE DONE")
        if response.result != "OK":
            raise self.error(f"IDLE ended with {response.result} {status_text(response)}")
        return outcome
