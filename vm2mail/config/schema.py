"""The schema reader shared by every config section: typed keys, checks, and unknown-key reports."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from vm2mail import phone
from vm2mail.config import yamlsource
from vm2mail.config.yamlsource import Source

# v4 fingerprints are 40 hex digits (RFC 4880 §12.2), v5/v6 ones 64 (RFC 9580 §5.5.4), as the encryptor takes.
FINGERPRINT = re.compile(r"^(?:[0-9A-F]{40}|[0-9A-F]{64})$")
LANGUAGES = ("en-US", "de-DE")
SECRET_KEYS = {"auth_token", "imap_password", "master_password", "secret_key", "password", "monitor_token"}
_MISSING = object()


class Section:
    """Reads the keys of one mapping, type-checks them and reports the keys nobody asked for."""

    def __init__(self, source: Source, path: str, data: Any) -> None:
        self.source, self.path = source, path
        if data is None:
            data = {}
        if not isinstance(data, dict):
            source.error(path, f"must be a mapping, not {type(data).__name__}")
            data = {}
        self.data: dict[str, Any] = data
        self.used: set[str] = set()

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(
        self,
        key: str,
        kind: type | tuple[type, ...],
        default: Any = _MISSING,
        check: Callable[[Any], str | None] | None = None,
    ) -> Any:
        self.used.add(key)
        path = self.key_path(key)
        if key in SECRET_KEYS and f"{key}_file" in self.data:
            self.used.add(f"{key}_file")
            if key in self.data:
                self.source.error(path, f"give either {key} or {key}_file, not both")
            secret = yamlsource.read_secret_file(self.source, f"{path}_file", self.data[f"{key}_file"])
            # An unreadable file is already reported; a stand-in value avoids a second "is required".
            return secret if secret is not None else "\x00unreadable secret file placeholder"
        if key not in self.data or self.data[key] is None:
            if default is _MISSING:
                self.source.error(path, "is required")
                return None
            return default
        value: Any = yamlsource.resolve_secret(self.source, path, self.data[key])
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            self.source.error(path, f"{value!r} must be {names}")
            return default if default is not _MISSING else None
        if check is not None and (problem := check(value)) is not None:
            self.source.error(path, problem)
        return value

    def done(self) -> None:
        for key in self.data:
            if key not in self.used:
                self.source.error(self.key_path(key), "unknown key")


def positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def e164(value: Any) -> str | None:
    return phone.e164_problem(value)


def country(value: Any) -> str | None:
    if value.upper() in phonenumbers.SUPPORTED_REGIONS:
        return None
    return f"{value!r} is not an ISO 3166 country code with a numbering plan (like DE, AT, CH, US)"


def timezone(value: Any) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return f"{value!r} is not a known time zone (like Europe/Berlin)"
    return None


def language(value: Any) -> str | None:
    return None if value in LANGUAGES else f"{value!r} is not one of {', '.join(LANGUAGES)}"


def url(value: Any) -> str | None:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (parsing the port raises for "host:99999" or "host:x")
    except ValueError as exc:  # "http://[::1": urlsplit raises rather than returning parts
        return f"{value!r} is not a valid URL: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{value!r} is not an http(s) URL"
    return None


def hostname(value: str) -> str | None:
    """The URL's host name, None when it has none or cannot be parsed (``url`` reports why)."""
    try:
        return urlsplit(value).hostname
    except ValueError:
        return None


def listen(source: Source, path: str, value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        source.error(path, f"{value!r} must be host:port")
        return "127.0.0.1", 8080
    return host.strip("[]"), int(port)


def fingerprint(source: Source, path: str, value: Any) -> str:
    if not isinstance(value, str):
        source.error(path, "must be a fingerprint string")
        return ""
    fpr = value.replace(" ", "").upper()
    if not FINGERPRINT.match(fpr):
        source.error(path, f"{value!r} is not a full OpenPGP fingerprint (40 hex digits, or 64 for v6 keys)")
    return fpr


def strings(source: Source, path: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        source.error(path, "must be a list of strings")
        return []
    return [str(v) for v in value]


def relative(source: Source, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (source.file.parent / path).resolve()
