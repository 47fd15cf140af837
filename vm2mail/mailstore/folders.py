"""IMAP mailbox-name encoding: modified UTF-7 (RFC 3501 §5.1.3) and quoted strings (RFC 3501 §4.3, §9)."""

from __future__ import annotations

import base64
import re

# RFC 3501 §9: quoted = DQUOTE *QUOTED-CHAR DQUOTE; "\" and DQUOTE are escaped, CR/LF/NUL are never allowed.
_FORBIDDEN = re.compile(r"[\x00\r\n]")
_SHIFTED = re.compile(r"&([A-Za-z0-9+,]*)-")


def quote(value: str) -> str:
    """Return ``value`` as an IMAP quoted string (7-bit callers should encode mailbox names first)."""
    if _FORBIDDEN.search(value):
        raise ValueError("NUL, CR and LF cannot appear in an IMAP quoted string")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _b64_utf16(chunk: str) -> str:
    data = chunk.encode("utf-16-be")
    # Modified BASE64 (RFC 2152 with "," instead of "/"), no "=" padding.
    return base64.b64encode(data).decode("ascii").rstrip("=").replace("/", ",")


def encode_mailbox(name: str) -> str:
    """Encode a Unicode mailbox name in modified UTF-7 (RFC 3501 §5.1.3).

    Printable US-ASCII (0x20-0x7e) stands for itself except "&", which becomes "&-"; any other run of
    characters is UTF-16BE in modified BASE64 between "&" and "-".
    """
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            out.append("&" + _b64_utf16("".join(pending)) + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def decode_mailbox(name: str) -> str:
    """Decode a modified UTF-7 mailbox name (RFC 3501 §5.1.3) back to Unicode."""

    def shifted(match: re.Match[str]) -> str:
        body = match.group(1)
        if not body:
            return "&"
        padded = body.replace(",", "/") + "=" * (-len(body) % 4)
        return base64.b64decode(padded).decode("utf-16-be")

    return _SHIFTED.sub(shifted, name)


def wire_mailbox(name: str, delimiter: str | None = "/") -> str:
    """The quoted, encoded form of a folder name for a command line.

    Folder names in the configuration use "/" as hierarchy separator ("Voicemail/Greetings"); servers
    whose delimiter differs (Courier and Maildir++ Dovecot use ".") get it translated.
    """
    if delimiter and delimiter != "/":
        name = name.replace("/", delimiter)
    return quote(encode_mailbox(name))


def parse_list_line(line: bytes) -> tuple[tuple[str, ...], str | None, str] | None:
    """Parse the data of one untagged LIST response (RFC 3501 §7.2.2): (flags, delimiter, decoded name).

    Accepts the line with or without the leading ``* LIST``; literal names are not handled (the
    caller's servers send quoted or atom names for ordinary folders).
    """
    text = line.decode("utf-8", errors="replace").strip()
    text = re.sub(r"^(\*\s+)?LIST\s+", "", text, flags=re.IGNORECASE)
    match = re.match(r'\(([^)]*)\)\s+(NIL|"(?:\\.|[^"\\])*")\s+(.*)$', text, flags=re.IGNORECASE)
    if match is None:
        return None
    flags = tuple(match.group(1).split())
    raw_delim = match.group(2)
    delimiter = None if raw_delim.upper() == "NIL" else _unquote(raw_delim)
    raw_name = match.group(3).strip()
    name = _unquote(raw_name) if raw_name.startswith('"') else raw_name
    return flags, delimiter, decode_mailbox(name)


def _unquote(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value[1:-1])
