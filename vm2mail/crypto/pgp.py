"""Encrypt voicemails to the OpenPGP keys an admin pinned per mailbox, and say why a key cannot be used."""

from __future__ import annotations

import contextlib
import functools
import re
import subprocess
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gnupg

from vm2mail.errors import CryptoError

# v4 fingerprints are 40 hex digits (RFC 4880 §12.2), v5/v6 ones 64 (RFC 9580 §5.5.4).
# A key found usable is not listed again for this long (a revocation within it fails at encryption).
USABLE_CACHE_SECONDS = 30.0
# gpg works in milliseconds here (FIELD-NOTES); one that has not finished after this long is stuck
# (a wedged gpg-agent, a held keyring lock) and is killed so the job is retried, not the worker tied up.
GPG_TIMEOUT_SECONDS = 60.0
_FINGERPRINT = re.compile(r"^(?:[0-9A-F]{40}|[0-9A-F]{64})$")


def _date(epoch: str) -> datetime | None:
    return datetime.fromtimestamp(int(epoch), UTC) if epoch.isdigit() else None


class _BoundedGPG(gnupg.GPG):  # type: ignore[misc]  # python-gnupg ships no type hints
    """gnupg.GPG whose every gpg process is killed after ``timeout`` seconds: python-gnupg has no timeout.

    python-gnupg starts the process and collects its output in the calling thread, so the deadline
    state is kept per thread: several workers may share one keyring object.
    """

    def __init__(self, *, timeout: float, **kwargs: Any) -> None:
        self.timeout = timeout
        self._local = threading.local()
        super().__init__(**kwargs)

    def _open_subprocess(self, args: Any, passphrase: bool = False) -> subprocess.Popen[bytes]:
        process: subprocess.Popen[bytes] = super()._open_subprocess(args, passphrase)
        state = {"expired": False}
        timer = threading.Timer(self.timeout, _expire, (process, state))
        timer.daemon = True
        timer.start()
        self._local.timer, self._local.state = timer, state
        return process

    def _collect_output(self, process: Any, result: Any, writer: Any = None, stdin: Any = None) -> Any:
        try:
            return super()._collect_output(process, result, writer, stdin)
        finally:
            timer = getattr(self._local, "timer", None)
            if timer is not None:
                timer.cancel()

    def expired(self) -> bool:
        """Whether the last gpg process this thread started was killed for running too long."""
        state = getattr(self._local, "state", None)
        return bool(state and state["expired"])


def _expire(process: subprocess.Popen[bytes], state: dict[str, bool]) -> None:
    state["expired"] = True
    with contextlib.suppress(OSError):
        process.kill()


class Encryptor:
    """python-gnupg over the gateway's GNUPGHOME, which holds the mailboxes' public keys only.

    Every method spawns one gpg process and blocks until it ends: call them from a worker thread
    (``asyncio.to_thread``), never on the event loop.
    """

    def __init__(self, home: Path, timeout: float = GPG_TIMEOUT_SECONDS) -> None:
        self.home = home
        try:
            self._gpg = _BoundedGPG(gnupghome=str(home), timeout=timeout)
        except (OSError, ValueError, RuntimeError) as exc:
            raise CryptoError(f"cannot run gpg with home {home}: {exc}", temporary=True) from exc
        self._gpg.encoding = "utf-8"
        # Fingerprint → monotonic time until which it counts as usable without asking gpg again. Each
        # listing is a gpg process; a busy pipeline would otherwise run two more per voicemail. Only
        # good results are kept, so a key imported to fix a problem is seen at once.
        self._usable_until: dict[str, float] = {}

    def _list(self, fingerprints: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Key records by primary fingerprint; missing keys are simply absent (gpg lists the others)."""
        if not fingerprints:
            return {}
        keys: list[dict[str, Any]] = list(self._gpg.list_keys(keys=list(fingerprints)))
        self._check_deadline("listing keys")
        return {key["fingerprint"]: key for key in keys}

    def _problems(self, fingerprints: Sequence[str]) -> dict[str, str | None]:
        """``_problem`` for each fingerprint, asking gpg only about those not recently found usable."""
        now = time.monotonic()
        unknown = [fpr for fpr in fingerprints if self._usable_until.get(fpr, 0.0) <= now]
        keys = self._list(unknown)
        problems: dict[str, str | None] = dict.fromkeys(fingerprints)
        for fpr in unknown:
            problems[fpr] = self._problem(keys.get(fpr))
            if problems[fpr] is None:
                self._usable_until[fpr] = now + USABLE_CACHE_SECONDS
        return problems

    @staticmethod
    def _problem(key: dict[str, Any] | None) -> str | None:
        """Why ``key`` cannot encrypt, from gpg's colon listing (validity field 2, capabilities field 12)."""
        if key is None:
            return "not in keyring"
        validity = key.get("trust", "")
        if validity == "r":
            return "revoked"
        if validity == "e":
            expired = _date(key.get("expires", ""))
            return f"expired {expired:%Y-%m-%d}" if expired else "expired"
        if validity in ("d", "i"):
            return "disabled" if validity == "d" else "invalid"
        # Upper-case capability letters are the key's usable ones, over primary and subkeys.
        if "E" in key.get("cap", ""):
            return None
        subkeys: dict[str, dict[str, Any]] = key.get("subkey_info", {})
        encrypting = [sub for sub in subkeys.values() if "e" in sub.get("cap", "")]
        if not encrypting:
            return "no encryption subkey"
        if all(sub.get("trust") == "r" for sub in encrypting):
            return "encryption subkey revoked"
        dates = [d for sub in encrypting if (d := _date(sub.get("expires", ""))) is not None]
        if dates:
            return f"encryption subkey expired {max(dates):%Y-%m-%d}"
        return "no usable encryption subkey"

    def check_key(self, fingerprint: str) -> str | None:
        """None if ``fingerprint`` names a key here that can encrypt, else what is wrong with it."""
        if not _FINGERPRINT.match(fingerprint):
            return "not a full fingerprint (40 or 64 upper-case hex digits)"
        return self._problems([fingerprint])[fingerprint]

    def expires(self, fingerprint: str) -> datetime | None:
        """When the key stops encrypting: the primary key's or its last encryption subkey's expiry.

        None when it never expires (or is not in the keyring; ``check_key`` tells that apart).
        """
        key = self._list([fingerprint]).get(fingerprint) if _FINGERPRINT.match(fingerprint) else None
        if key is None:
            return None
        primary = _date(key.get("expires", ""))
        subkeys: dict[str, dict[str, Any]] = key.get("subkey_info", {})
        encrypting = [sub for sub in subkeys.values() if "e" in sub.get("cap", "")]
        sub_dates = [_date(sub.get("expires", "")) for sub in encrypting if sub.get("trust") != "r"]
        # A subkey without expiry lasts as long as the primary; otherwise the latest subkey counts.
        sub_expiry = None if (not sub_dates or None in sub_dates) else max(d for d in sub_dates if d)
        candidates = [d for d in (primary, sub_expiry) if d is not None]
        return min(candidates) if candidates else None

    def encrypt(self, data: bytes, recipients: Sequence[str]) -> bytes:
        """Encrypt ``data`` to every fingerprint in ``recipients``; ASCII-armored OpenPGP (RFC 4880 §6.2).

        Raises CryptoError(temporary=False) naming the unusable keys or gpg's status; the message never
        contains the plaintext.
        """
        recipients = list(dict.fromkeys(recipients))
        if not recipients:
            raise CryptoError("no recipients to encrypt to", temporary=False)
        bad = [fpr for fpr in recipients if not _FINGERPRINT.match(fpr)]
        if bad:
            raise CryptoError(f"recipients must be full fingerprints: {', '.join(bad)}", temporary=False)
        # Check first: gpg rejects an unusable key only after python-gnupg started writing the data,
        # which for large audio shows up as a BrokenPipeError instead of a reason.
        problems = [f"{fpr}: {p}" for fpr, p in self._problems(recipients).items() if p]
        if problems:
            raise CryptoError("cannot encrypt to " + "; ".join(problems), temporary=False)
        try:
            # always_trust=True skips the web of trust. That is sound only because every recipient is a
            # full fingerprint the admin pinned in the configuration (checked above): the pin is the
            # trust decision. Never pass user IDs or short key IDs here.
            result = self._gpg.encrypt(data, recipients, armor=True, always_trust=True)
        except (OSError, ValueError) as exc:
            self._check_deadline("encryption")
            raise CryptoError(f"gpg failed: {type(exc).__name__}: {exc}", temporary=False) from exc
        self._check_deadline("encryption")
        if not result.ok or not result.data:
            status = result.status or "no status"
            lines = (result.stderr or "").splitlines()
            # gpg's status lines ("[GNUPG:] INV_RECP 10 <fpr>") name the failure, never the plaintext.
            detail = "; ".join(line.removeprefix("[GNUPG:] ") for line in lines if "INV_RECP" in line)
            suffix = f"; {detail}" if detail else ""
            raise CryptoError(f"gpg encryption failed: {status}{suffix}", temporary=False)
        armored: bytes = result.data
        return armored

    def decrypt(self, data: bytes) -> bytes:
        """Decrypt an OpenPGP message (RFC 4880 §5.1) with a secret key of this keyring (the playback key).

        Raises CryptoError(temporary=False) when no secret key here can open it or the data is not an
        OpenPGP message; the error carries gpg's status, never the content.
        """
        try:
            result = self._gpg.decrypt(data)
        except (OSError, ValueError) as exc:
            self._check_deadline("decryption")
            raise CryptoError(f"gpg failed: {type(exc).__name__}: {exc}", temporary=False) from exc
        self._check_deadline("decryption")
        if not result.ok:
            raise CryptoError(f"gpg cannot decrypt: {result.status or 'no status'}", temporary=False)
        plain: bytes = result.data
        return plain

    def _check_deadline(self, what: str) -> None:
        if self._gpg.expired():
            # Temporary: a stuck agent or lock clears up; the job is retried, not failed.
            raise CryptoError(
                f"gpg {what} did not finish within {self._gpg.timeout:.0f}s; killed", temporary=True
            )


@functools.lru_cache(maxsize=16)
def encryptor(home: Path) -> Encryptor:
    """The process's one ``Encryptor`` for a keyring: constructing one runs ``gpg --version``."""
    return Encryptor(home)
