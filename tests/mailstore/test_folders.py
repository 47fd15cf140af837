"""Modified UTF-7 and quoting of mailbox names (RFC 3501 §5.1.3, §9)."""

from __future__ import annotations

import pytest

from vm2mail.mailstore.folders import decode_mailbox, encode_mailbox, quote, wire_mailbox
from vm2mail.mailstore.protocol import parse_list_line


def test_rfc3501_example() -> None:
    # RFC 3501 §5.1.3 example.
    assert encode_mailbox("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert decode_mailbox("~peter/mail/&U,BTFw-/&ZeVnLIqe-") == "~peter/mail/台北/日本語"


@pytest.mark.parametrize("name", ["INBOX", "A & B", "Grüße", "Ü/ä ö", "😀 emoji", "&-", "x&y&"])
def test_round_trip(name: str) -> None:
    encoded = encode_mailbox(name)
    assert encoded.isascii()
    assert decode_mailbox(encoded) == name


def test_ampersand_and_quoting() -> None:
    assert encode_mailbox("Tom & Jerry") == "Tom &- Jerry"
    assert quote('a "b" \\c') == '"a \\"b\\" \\\\c"'
    assert wire_mailbox("Voicemail/Grüße", ".") == '"Voicemail.Gr&APwA3w-e"'
    with pytest.raises(ValueError):
        quote("a\r\nb")


def test_parse_list_line() -> None:
    assert parse_list_line(b'* LIST (\\HasNoChildren \\Trash) "/" Trash') == (
        ("\\HasNoChildren", "\\Trash"),
        "/",
        "Trash",
    )
    assert parse_list_line(b'(\\Noselect) "/" ""') == (("\\Noselect",), "/", "")
    assert parse_list_line(b'() "." "Gr&APwA3w-e \\"x\\""') == ((), ".", 'Grüße "x"')
