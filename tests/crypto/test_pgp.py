"""crypto.pgp: the Encryptor against a real gateway GNUPGHOME, with good, expired, revoked and absent keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.fixtures.gpg import GpgKeys
from vm2mail.crypto.pgp import Encryptor
from vm2mail.devstack import keys
from vm2mail.errors import CryptoError


def test_encrypts_to_every_recipient(gpg_keys: GpgKeys) -> None:
    anna, bob = gpg_keys("Anna"), gpg_keys("Bob")
    encryptor = Encryptor(gpg_keys.home)
    plaintext = "Grüße\r\n".encode() * 1000
    armored = encryptor.encrypt(plaintext, [anna.fingerprint, bob.fingerprint])
    assert armored.startswith(b"-----BEGIN PGP MESSAGE-----")
    assert plaintext not in armored
    assert keys.decrypt(anna.secret_home, armored) == plaintext
    assert keys.decrypt(bob.secret_home, armored) == plaintext


def test_large_payload(gpg_keys: GpgKeys) -> None:
    # Several MB, like a long voicemail: no pipe trouble, exact bytes back.
    anna = gpg_keys("Anna")
    plaintext = bytes(range(256)) * 20_000
    armored = Encryptor(gpg_keys.home).encrypt(plaintext, [anna.fingerprint])
    assert keys.decrypt(anna.secret_home, armored) == plaintext


def test_gateway_home_has_no_secret_keys(gpg_keys: GpgKeys) -> None:
    anna = gpg_keys("Anna")
    armored = Encryptor(gpg_keys.home).encrypt(b"secret", [anna.fingerprint])
    with pytest.raises(RuntimeError, match="decrypt"):
        keys.decrypt(gpg_keys.home, armored)


def test_check_key_names_each_problem(gpg_keys: GpgKeys) -> None:
    good = gpg_keys("Good")
    expired = gpg_keys("Old", expired=True)
    revoked = gpg_keys("Gone", revoked=True)
    signing_only = gpg_keys("Signer", encrypt=False)
    absent = gpg_keys("Stranger", import_to_gateway=False)
    encryptor = Encryptor(gpg_keys.home)
    assert encryptor.check_key(good.fingerprint) is None
    assert encryptor.check_key(expired.fingerprint) == "expired 2020-01-02"
    assert encryptor.check_key(revoked.fingerprint) == "revoked"
    assert encryptor.check_key(signing_only.fingerprint) == "no encryption subkey"
    assert encryptor.check_key(absent.fingerprint) == "not in keyring"
    assert "fingerprint" in (encryptor.check_key(good.fingerprint[-16:]) or "")


def test_expires(gpg_keys: GpgKeys) -> None:
    good = gpg_keys("Good")
    expired = gpg_keys("Old", expired=True)
    encryptor = Encryptor(gpg_keys.home)
    when = encryptor.expires(good.fingerprint)
    assert when is not None
    # devstack keys expire after 2 years
    assert abs(when - (datetime.now(UTC) + timedelta(days=730))) < timedelta(days=2)
    assert encryptor.expires(expired.fingerprint) == datetime(2020, 1, 2, tzinfo=UTC)
    assert encryptor.expires("0" * 40) is None


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ({"expired": True}, "expired 2020-01-02"),
        ({"revoked": True}, "revoked"),
        ({"encrypt": False}, "no encryption subkey"),
        ({"import_to_gateway": False}, "not in keyring"),
    ],
    ids=["expired", "revoked", "signing-only", "unknown"],
)
def test_unusable_key_is_a_permanent_crypto_error(
    gpg_keys: GpgKeys, kind: dict[str, bool], reason: str
) -> None:
    good = gpg_keys("Good")
    bad = gpg_keys("Bad", **kind)
    plaintext = b"voicemail audio " * 50_000  # large: must not surface as BrokenPipeError
    with pytest.raises(CryptoError) as caught:
        Encryptor(gpg_keys.home).encrypt(plaintext, [good.fingerprint, bad.fingerprint])
    assert caught.value.temporary is False
    assert f"{bad.fingerprint}: {reason}" in str(caught.value)
    assert good.fingerprint not in str(caught.value)
    assert b"voicemail audio" not in str(caught.value).encode()


def test_recipients_must_be_pinned_fingerprints(gpg_keys: GpgKeys) -> None:
    anna = gpg_keys("Anna")
    encryptor = Encryptor(gpg_keys.home)
    for loose in (anna.email, anna.fingerprint[-16:], anna.fingerprint.lower()):
        with pytest.raises(CryptoError, match="full fingerprints"):
            encryptor.encrypt(b"x", [loose])
    with pytest.raises(CryptoError, match="no recipients"):
        encryptor.encrypt(b"x", [])
