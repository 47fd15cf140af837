"""Hash and verify mailbox PINs with scrypt (RFC 7914); only the hash is ever stored or logged."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

# RFC 7914 scrypt, N=2^14, r=8, p=1: 16 MiB and about 30 ms per check on a small server. A PIN has
# only 10^4..10^8 values, so no cost a caller can wait for stops an offline search of a copied hash
# (N=2^15 would double it: hours instead of half as many hours). What protects a PIN is the lockout
# after repeated failures and keeping the hash where only the admin and the mailbox owner can read it;
# the hash only makes sure the PIN itself is never written anywhere. The format carries N, r and p,
# so hashes made with other parameters keep working.
N, R, P = 2**14, 8, 1
_FORMAT = re.compile(r"^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")
PIN = re.compile(r"^[0-9]{4,12}$")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _derive(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(pin.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)


def hash_pin(pin: str) -> str:
    """``scrypt$N$r$p$salt$hash`` for a PIN of 4 to 12 digits; ValueError for anything else."""
    if not PIN.match(pin):
        raise ValueError("a PIN is 4 to 12 digits")
    salt = os.urandom(16)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(_derive(pin, salt, N, R, P))}"


def is_pin_hash(value: str) -> bool:
    return _FORMAT.match(value) is not None


def verify_pin(pin: str, stored: str) -> bool:
    """True when ``pin`` matches ``stored``; constant-time compare, False for malformed hashes."""
    match = _FORMAT.match(stored)
    if match is None or not PIN.match(pin):
        return False
    n, r, p = (int(match.group(i)) for i in (1, 2, 3))
    if n > 2**20 or r > 32 or p > 16:  # a hostile hash must not make us allocate gigabytes
        return False
    salt, expected = base64.b64decode(match.group(4)), base64.b64decode(match.group(5))
    return hmac.compare_digest(_derive(pin, salt, n, r, p), expected)
