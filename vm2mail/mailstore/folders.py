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
