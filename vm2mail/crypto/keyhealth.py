"""Health of every OpenPGP key the configuration pins: present, able to encrypt, and how long still."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vm2mail.config.model import Config
from vm2mail.crypto.pgp import Encryptor
from vm2mail.errors import Vm2mailError

WARN_DAYS = 30  # check-config, status and `keys check` warn this long before a key expires

OK = "ok"
EXPIRING = "expiring"
UNUSABLE = "unusable"


@dataclass(frozen=True, kw_only=True)
class KeyHealth:
    """One configured fingerprint, as the gateway's keyring sees it now."""

    path: str  # the YAML key path, e.g. "mailboxes.201.gpg_recipients[0]" or "gpg.playback_key"
    mailbox: str | None  # None for the gateway's playback key
    fingerprint: str
    problem: str | None  # why it cannot encrypt ("not in keyring", "revoked", "expired 2026-01-01"), or None
    expires: datetime | None  # None: never expires (or unknown when the key is missing)
    state: str  # OK | EXPIRING | UNUSABLE

    @property
    def present(self) -> bool:
        return self.problem != "not in keyring"

    @property
    def usable(self) -> bool:
        return self.problem is None

    def describe(self) -> str:
        """One line for humans: what is wrong, or until when the key works."""
        if self.problem is not None:
            return self.problem
        if self.expires is None:
            return "usable, does not expire"
        return f"usable, expires {self.expires:%Y-%m-%d}"

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "mailbox": self.mailbox,
            "fingerprint": self.fingerprint,
            "present": self.present,
            "usable": self.usable,
            "problem": self.problem,
            "expires": self.expires.isoformat() if self.expires else None,
            "state": self.state,
        }


def configured_keys(config: Config) -> list[tuple[str, str | None, str]]:
    """(key path, mailbox id or None, fingerprint) for every pinned key, in file order."""
    keys: list[tuple[str, str | None, str]] = [
        (f"mailboxes.{box.id}.gpg_recipients[{i}]", box.id, fpr)
        for box in config.mailboxes.values()
        for i, fpr in enumerate(box.gpg_recipients)
    ]
    if config.gpg.playback_key:
        keys.append(("gpg.playback_key", None, config.gpg.playback_key))
    return keys


def check_keys(config: Config, *, now: datetime | None = None, warn_days: int = WARN_DAYS) -> list[KeyHealth]:
    """The health of every configured key. Blocking (one gpg run per key): call it from a thread."""
    wanted = configured_keys(config)
    if not wanted:
        return []
    now = now or datetime.now(UTC)
    try:
        encryptor: Encryptor | None = Encryptor(config.gpg.home)
        home_problem = None
    except Vm2mailError as exc:
        encryptor, home_problem = None, str(exc)
    result = []
    for path, mailbox, fpr in wanted:
        problem = home_problem if encryptor is None else encryptor.check_key(fpr)
        expires = encryptor.expires(fpr) if encryptor is not None and problem is None else None
        if problem is not None:
            state = UNUSABLE
        elif expires is not None and expires - now <= timedelta(days=warn_days):
            state = EXPIRING
        else:
            state = OK
        result.append(
            KeyHealth(
                path=path, mailbox=mailbox, fingerprint=fpr, problem=problem, expires=expires, state=state
            )
        )
    return result


def by_mailbox(health: list[KeyHealth], mailbox: str) -> list[KeyHealth]:
    return [h for h in health if h.mailbox == mailbox]


def worst(health: list[KeyHealth]) -> str:
    """The worst state among ``health`` (OK when empty)."""
    states = {h.state for h in health}
    return UNUSABLE if UNUSABLE in states else EXPIRING if EXPIRING in states else OK
