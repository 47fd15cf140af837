"""aioimaplib's response reader made iterative: its recursive one dies on a read of ~1,000 lines.

``IMAP4ClientProtocol._handle_responses`` calls itself once per line of each socket read; a reply
whose read holds more lines than Python's recursion limit (a FETCH of a thousand flag changes after
a user marked a folder read, ~60 bytes a line, fits one 64 KB read) raises RecursionError inside
``data_received`` and the connection is lost. This is the same function as a loop: the same steps
in the same order, the tail call replaced by a jump. Installed once, when the mail store is
imported; ``tests/mailstore/test_contracts.py`` checks that the original still has the shape copied
here (aioimaplib is pinned below 2.1 in pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aioimaplib import aioimaplib as _lib

ORIGINAL = _lib.IMAP4ClientProtocol._handle_responses


def _handle_responses(
    self: Any, data: bytes, line_handler: Callable[[bytes, Any], Any], current_cmd: Any = None
) -> None:
    while True:
        if not data:
            if self.pending_sync_command is not None:
                self.pending_sync_command.flush()
            if current_cmd is not None and current_cmd.wait_data():
                raise _lib.IncompleteRead(current_cmd)
            return

        if current_cmd is not None and current_cmd.wait_literal_data():
            data = current_cmd.append_literal_data(data)
            if current_cmd.wait_literal_data():
                raise _lib.IncompleteRead(current_cmd)

        line, separator, tail = data.partition(_lib.CRLF)
        if not separator:
            raise _lib.IncompleteRead(current_cmd, data)

        cmd = line_handler(line, current_cmd)

        begin_literal = _lib.literal_data_re.match(line)
        if begin_literal:
            size = int(begin_literal.group("size"))
            if cmd is None:
                cmd = _lib.Command("NIL", "unused")
            cmd.begin_literal_data(size)
            data, current_cmd = tail, cmd
        elif cmd is not None and cmd.wait_data():
            data, current_cmd = tail, cmd
        else:
            data, current_cmd = tail, None


def install() -> None:
    _lib.IMAP4ClientProtocol._handle_responses = _handle_responses
