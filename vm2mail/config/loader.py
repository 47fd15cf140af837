"""Validate the YAML against the schema and build a Config; every problem names file, line and key path."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vm2mail.config import yamlsource
from vm2mail.config.model import (
    Config,
    Defaults,
    GpgConfig,
    ImapConfig,
    Mailbox,
    ServerConfig,
    TwilioConfig,
)
from vm2mail.config.yamlsource import Source
from vm2mail.errors import ConfigError

E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
FINGERPRINT = re.compile(r"^[0-9A-F]{40}$")
LANGUAGES = ("en-US", "de-DE")
SECRET_KEYS = {"auth_token", "imap_password", "master_password", "secret_key"}
_MISSING = object()


class _Section:
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


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _e164(value: Any) -> str | None:
    return None if E164.match(value) else f"{value!r} is not an E.164 number (like +4930123456)"


def _timezone(value: Any) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return f"{value!r} is not a known time zone (like Europe/Berlin)"
    return None


def _language(value: Any) -> str | None:
    return None if value in LANGUAGES else f"{value!r} is not one of {', '.join(LANGUAGES)}"


def _url(value: Any) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{value!r} is not an http(s) URL"
    return None


def _listen(source: Source, path: str, value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        source.error(path, f"{value!r} must be host:port")
        return "127.0.0.1", 8080
    return host.strip("[]"), int(port)


def _server(source: Source, data: Any) -> ServerConfig:
    s = _Section(source, "server", data)
    host, port = _listen(source, "server.listen", s.get("listen", str, "127.0.0.1:8080"))
    public_url = s.get("public_url", str, check=_url) or "http://invalid"
    spool = s.get("spool_dir", str, "/var/lib/vm2mail/spool")
    domain = s.get("mail_domain", str, urlsplit(public_url).hostname or "localhost")
    config = ServerConfig(
        listen_host=host,
        listen_port=port,
        public_url=public_url.rstrip("/"),
        spool_dir=_relative(source, spool),
        workers=s.get("workers", int, 2, _positive),
        mail_domain=domain,
        secret_key=s.get("secret_key", str, ""),
        log_format=s.get(
            "log_format", str, "text", lambda v: None if v in ("text", "json") else "must be text or json"
        ),
    )
    s.done()
    if not config.secret_key:
        source.error("server.secret_key", "is required (a long random string; use secret_key_file)")
    elif len(config.secret_key) < 16:
        source.error("server.secret_key", "is too short: use at least 16 random characters")
    return config


def _twilio(source: Source, data: Any) -> TwilioConfig:
    s = _Section(source, "twilio", data)
    config = TwilioConfig(
        account_sid=s.get(
            "account_sid",
            str,
            check=lambda v: (
                None
                if re.fullmatch(r"AC[0-9a-f]{32}", v)
                else f"{v!r} is not a Twilio Account SID (AC + 32 hex digits)"
            ),
        )
        or "",
        auth_token=s.get("auth_token", str) or "",
        api_base_url=s.get("api_base_url", str, "https://api.twilio.com", _url).rstrip("/"),
        delete_recordings=s.get("delete_recordings", bool, True),
        sms_from=s.get("sms_from", str, None, _e164),
    )
    s.done()
    parts = urlsplit(config.api_base_url)
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        # Recordings are fetched with the account's credentials: plain HTTP only for a local stand-in.
        source.error("twilio.api_base_url", "must use https (plain http only for loopback test servers)")
    return config


def _imap(source: Source, data: Any) -> ImapConfig:
    s = _Section(source, "imap", data)
    security = s.get(
        "security",
        str,
        "starttls",
        lambda v: None if v in ("tls", "starttls", "none") else "must be tls, starttls or none",
    )
    ca_file = s.get("ca_file", str, None)
    config = ImapConfig(
        host=s.get("host", str, "127.0.0.1"),
        port=s.get("port", int, 993 if security == "tls" else 143, _positive),
        security=security,
        ca_file=_relative(source, ca_file) if ca_file else None,
        master_user=s.get("master_user", str, None),
        master_password=s.get("master_password", str, None),
        timeout_seconds=s.get("timeout_seconds", float, 30.0, _positive),
    )
    s.done()
    if config.master_user and not config.master_password:
        source.error("imap.master_password", "is required when master_user is set")
    return config


def _gpg(source: Source, data: Any) -> GpgConfig:
    s = _Section(source, "gpg", data)
    home = s.get("home", str, "/var/lib/vm2mail/gnupg")
    playback = s.get("playback_key", str, None)
    s.done()
    return GpgConfig(
        home=_relative(source, home),
        playback_key=_fingerprint(source, "gpg.playback_key", playback) if playback else None,
    )


def _defaults(source: Source, data: Any) -> Defaults:
    s = _Section(source, "defaults", data)
    config = Defaults(
        ring_seconds=s.get("ring_seconds", int, 20, _positive),
        max_message_seconds=s.get("max_message_seconds", int, 300, _positive),
        min_message_seconds=s.get("min_message_seconds", int, 1),
        folder=s.get("folder", str, "Voicemail"),
        language=s.get("language", str, "en-US", _language),
        timezone=s.get("timezone", str, "Europe/Berlin", _timezone),
        missed_call_email=s.get("missed_call_email", bool, True),
        private_subject=s.get("private_subject", bool, False),
    )
    s.done()
    return config


def _fingerprint(source: Source, path: str, value: Any) -> str:
    if not isinstance(value, str):
        source.error(path, "must be a fingerprint string")
        return ""
    fpr = value.replace(" ", "").upper()
    if not FINGERPRINT.match(fpr):
        source.error(path, f"{value!r} is not a full 40-hex-digit OpenPGP fingerprint")
    return fpr


def _strings(source: Source, path: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        source.error(path, "must be a list of strings")
        return []
    return [str(v) for v in value]


def _mailbox(source: Source, box_id: str, data: Any, d: Defaults) -> Mailbox:
    path = f"mailboxes.{box_id}"
    s = _Section(source, path, data)
    numbers = _strings(source, f"{path}.numbers", s.get("numbers", list, []))
    for i, number in enumerate(numbers):
        if problem := _e164(number):
            source.error(f"{path}.numbers[{i}]", problem)
    recipients = s.get("gpg_recipients", list, [])
    members = _strings(source, f"{path}.members", s.get("members", list, []))
    box = Mailbox(
        id=box_id,
        name=s.get("name", str, f"Mailbox {box_id}"),
        email=s.get("email", str, None),
        imap_user=s.get("imap_user", str, None),
        imap_password=s.get("imap_password", str, None),
        numbers=tuple(numbers),
        forward_to=s.get("forward_to", str, None, _e164),
        gpg_recipients=tuple(
            _fingerprint(source, f"{path}.gpg_recipients[{i}]", v) for i, v in enumerate(recipients)
        ),
        members=tuple(members),
        ring_seconds=s.get("ring_seconds", int, d.ring_seconds, _positive),
        max_message_seconds=s.get("max_message_seconds", int, d.max_message_seconds, _positive),
        min_message_seconds=s.get("min_message_seconds", int, d.min_message_seconds),
        folder=s.get("folder", str, d.folder),
        language=s.get("language", str, d.language, _language),
        timezone=s.get("timezone", str, d.timezone, _timezone),
        missed_call_email=s.get("missed_call_email", bool, d.missed_call_email),
        private_subject=s.get("private_subject", bool, d.private_subject),
        phone_playback=s.get("phone_playback", bool, False),
    )
    s.done()
    return box


def _mailboxes(source: Source, data: Any, defaults: Defaults, imap: ImapConfig) -> dict[str, Mailbox]:
    if not isinstance(data, dict) or not data:
        source.error("mailboxes", "must map mailbox numbers to mailboxes (at least one)")
        return {}
    boxes = {str(k): _mailbox(source, str(k), v, defaults) for k, v in data.items()}
    seen: dict[str, str] = {}
    for box in boxes.values():
        path = f"mailboxes.{box.id}"
        for i, number in enumerate(box.numbers):
            if number in seen:
                source.error(f"{path}.numbers[{i}]", f"{number} already reaches mailbox {seen[number]}")
            seen[number] = box.id
        for i, member in enumerate(box.members):
            if member not in boxes:
                source.error(f"{path}.members[{i}]", f"unknown mailbox {member!r}")
            elif boxes[member].is_group:
                source.error(f"{path}.members[{i}]", f"mailbox {member!r} is itself a group")
        if box.is_group:
            continue
        if not box.imap_user:
            source.error(f"{path}.imap_user", "is required (the IMAP login whose folder gets voicemail)")
        if not box.imap_password and not imap.master_user:
            source.error(f"{path}.imap_password", "is required unless imap.master_user is set")
    return boxes


def _relative(source: Source, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (source.file.parent / path).resolve()


KeyCheck = Callable[[Config], list[tuple[str, str]]]


def load_config(path: Path | str, *, check_keys: KeyCheck | None = None) -> Config:
    """Load and validate ``path``. ``check_keys`` returns (key path, problem) for fingerprints that the
    gateway's keyring cannot use; it is given by the caller so config stays free of gpg."""
    file = Path(path)
    try:
        source = yamlsource.read(file)
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read: {exc.strerror}"]) from exc
    if source.problems:
        raise ConfigError(source.problems)
    root = _Section(source, "", source.data)
    server = _server(source, root.get("server", dict))
    twilio = _twilio(source, root.get("twilio", dict))
    imap = _imap(source, root.get("imap", dict, {}))
    gpg = _gpg(source, root.get("gpg", dict, {}))
    defaults = _defaults(source, root.get("defaults", dict, {}))
    templates = root.get("templates_dir", str, None)
    mailboxes = _mailboxes(source, root.get("mailboxes", dict), defaults, imap)
    root.done()
    if source.problems:
        raise ConfigError(source.problems)
    config = Config(
        source=file,
        server=server,
        twilio=twilio,
        imap=imap,
        gpg=gpg,
        defaults=defaults,
        mailboxes=mailboxes,
        templates_dir=_relative(source, templates) if templates else None,
    )
    if check_keys is not None:
        for key_path, problem in check_keys(config):
            source.error(key_path, problem)
        if source.problems:
            raise ConfigError(source.problems)
    return config
