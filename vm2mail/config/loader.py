"""Validate the YAML against the schema and build a Config; every problem names file, line and key path."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from vm2mail.config.routing import forward_target, number_hours, office_hours, outage, routing
from vm2mail.config.schema import (
    Section,
    country,
    e164,
    fingerprint,
    hostname,
    language,
    listen,
    positive,
    relative,
    strings,
    timezone,
    url,
)
from vm2mail.config.services import admin, menu, notify, smtp_ingress, smtp_relay, watcher
from vm2mail.config.web import web
from vm2mail.config.yamlsource import Source
from vm2mail.errors import ConfigError
from vm2mail.pinhash import is_pin_hash

log = logging.getLogger(__name__)


def _private(source: Source, s: Section, default: bool) -> bool:
    """``private``, or the deprecated ``private_subject`` read as ``private`` (it promised privacy)."""
    if s.data.get("private_subject") is not None:
        log.warning(
            "%s:%d: %s: deprecated, use `private: true` (it hides every caller detail, not only the Subject)",
            source.file.name, source.line(s.key_path("private_subject")), s.key_path("private_subject"),
        )  # fmt: skip
    legacy = s.get("private_subject", bool, None)
    return bool(s.get("private", bool, default) or legacy)


def _server(source: Source, data: Any) -> ServerConfig:
    s = Section(source, "server", data)
    host, port = listen(source, "server.listen", s.get("listen", str, "127.0.0.1:8080"))
    public_url = s.get("public_url", str, check=url) or "http://invalid"
    spool = s.get("spool_dir", str, "/var/lib/vm2mail/spool")
    domain = s.get("mail_domain", str, hostname(public_url) or "localhost")
    config = ServerConfig(
        listen_host=host,
        listen_port=port,
        public_url=public_url.rstrip("/"),
        spool_dir=relative(source, spool),
        workers=s.get("workers", int, 2, positive),
        mail_domain=domain,
        secret_key=s.get("secret_key", str, ""),
        log_format=s.get(
            "log_format", str, "text", lambda v: None if v in ("text", "json") else "must be text or json"
        ),
        call_budget_seconds=s.get("call_budget_seconds", float, 1.5, positive),
        spool_keep_days=s.get("spool_keep_days", int, 30, positive),
    )
    s.done()
    if not config.secret_key:
        source.error("server.secret_key", "is required (a long random string; use secret_key_file)")
    elif len(config.secret_key) < 16:
        source.error("server.secret_key", "is too short: use at least 16 random characters")
    return config


def _twilio(source: Source, data: Any) -> TwilioConfig:
    s = Section(source, "twilio", data)
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
        api_base_url=s.get("api_base_url", str, "https://api.twilio.com", url).rstrip("/"),
        delete_recordings=s.get("delete_recordings", bool, True),
        sms_from=s.get("sms_from", str, None, e164),
        timeout_seconds=s.get("timeout_seconds", float, 30.0, positive),
    )
    s.done()
    if config.api_base_url.lower().startswith("http:") and hostname(config.api_base_url) not in (
        "127.0.0.1",
        "localhost",
        "::1",
    ):
        # Recordings are fetched with the account's credentials: plain HTTP only for a local stand-in.
        source.error("twilio.api_base_url", "must use https (plain http only for loopback test servers)")
    return config


def _imap(source: Source, data: Any) -> ImapConfig:
    s = Section(source, "imap", data)
    security = s.get(
        "security",
        str,
        "starttls",
        lambda v: None if v in ("tls", "starttls", "none") else "must be tls, starttls or none",
    )
    ca_file = s.get("ca_file", str, None)
    config = ImapConfig(
        host=s.get("host", str, "127.0.0.1"),
        port=s.get("port", int, 993 if security == "tls" else 143, positive),
        security=security,
        ca_file=relative(source, ca_file) if ca_file else None,
        master_user=s.get("master_user", str, None),
        master_password=s.get("master_password", str, None),
        timeout_seconds=s.get("timeout_seconds", float, 30.0, positive),
    )
    s.done()
    if config.master_user and not config.master_password:
        source.error("imap.master_password", "is required when master_user is set")
    return config


def _gpg(source: Source, data: Any) -> GpgConfig:
    s = Section(source, "gpg", data)
    home = s.get("home", str, "/var/lib/vm2mail/gnupg")
    playback = s.get("playback_key", str, None)
    s.done()
    return GpgConfig(
        home=relative(source, home),
        playback_key=fingerprint(source, "gpg.playback_key", playback) if playback else None,
    )


def _defaults(source: Source, data: Any) -> Defaults:
    s = Section(source, "defaults", data)
    config = Defaults(
        ring_seconds=s.get("ring_seconds", int, 20, positive),
        max_message_seconds=s.get("max_message_seconds", int, 300, positive),
        min_message_seconds=s.get("min_message_seconds", int, 1),
        folder=s.get("folder", str, "Voicemail"),
        language=s.get("language", str, "en-US", language),
        timezone=s.get("timezone", str, "Europe/Berlin", timezone),
        missed_call_email=s.get("missed_call_email", bool, True),
        private=_private(source, s, False),
        country=_country(s.get("country", str, None, country)),
        max_messages=s.get("max_messages", int, 100, positive),
        retention_days=s.get("retention_days", int, None, positive),
        trash_days=s.get("trash_days", int, 30, positive),
        keep_saved=s.get("keep_saved", bool, True),
        group_sync=s.get("group_sync", bool, True),
        notify=notify(source, "defaults.notify", s.get("notify", dict, {}), None),
    )
    s.done()
    return config


def _mailbox(source: Source, box_id: str, data: Any, d: Defaults) -> Mailbox:
    path = f"mailboxes.{box_id}"
    s = Section(source, path, data)
    numbers = strings(source, f"{path}.numbers", s.get("numbers", list, []))
    for i, number in enumerate(numbers):
        if problem := e164(number):
            source.error(f"{path}.numbers[{i}]", problem)
    recipients = s.get("gpg_recipients", list, [])
    members = strings(source, f"{path}.members", s.get("members", list, []))
    box = Mailbox(
        id=box_id,
        name=s.get("name", str, f"Mailbox {box_id}"),
        email=s.get("email", str, None),
        imap_user=s.get("imap_user", str, None),
        imap_password=s.get("imap_password", str, None),
        numbers=tuple(numbers),
        forward_to=s.get("forward_to", str, None, forward_target),
        gpg_recipients=tuple(
            fingerprint(source, f"{path}.gpg_recipients[{i}]", v) for i, v in enumerate(recipients)
        ),
        members=tuple(members),
        ring_seconds=s.get("ring_seconds", int, d.ring_seconds, positive),
        max_message_seconds=s.get("max_message_seconds", int, d.max_message_seconds, positive),
        min_message_seconds=s.get("min_message_seconds", int, d.min_message_seconds),
        folder=s.get("folder", str, d.folder),
        language=s.get("language", str, d.language, language),
        timezone=s.get("timezone", str, d.timezone, timezone),
        missed_call_email=s.get("missed_call_email", bool, d.missed_call_email),
        private_subject=False,
        private=_private(source, s, d.private),
        country=_country(s.get("country", str, d.country, country)),
        phone_playback=s.get("phone_playback", bool, False),
        pin_hash=s.get("pin", str, None, _pin_hash),
        aliases=tuple(strings(source, f"{path}.aliases", s.get("aliases", list, []))),
        max_messages=s.get("max_messages", int, d.max_messages, positive),
        retention_days=s.get("retention_days", int, d.retention_days, positive),
        trash_days=s.get("trash_days", int, d.trash_days, positive),
        keep_saved=s.get("keep_saved", bool, d.keep_saved),
        group_sync=s.get("group_sync", bool, d.group_sync),
        allow_plain=s.get("allow_plain", bool, False),
        notify=notify(source, f"{path}.notify", s.get("notify", dict, None), d.notify),
        office_hours=office_hours(source, f"{path}.office_hours", s.get("office_hours", dict, None)),
    )
    s.done()
    return box


def _country(value: str | None) -> str | None:
    return value.upper() if value else None


def _pin_hash(value: Any) -> str | None:
    if is_pin_hash(value):
        return None
    return "must be a PIN hash from `vm2mail hash-pin` (scrypt$...), never the PIN itself"


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
    root = Section(source, "", source.data)
    server = _server(source, root.get("server", dict))
    twilio = _twilio(source, root.get("twilio", dict))
    imap = _imap(source, root.get("imap", dict, {}))
    gpg = _gpg(source, root.get("gpg", dict, {}))
    defaults = _defaults(source, root.get("defaults", dict, {}))
    templates = root.get("templates_dir", str, None)
    mailboxes = _mailboxes(source, root.get("mailboxes", dict), defaults, imap)
    menu_config = menu(source, root.get("menu", dict, {}), mailboxes)
    admin_config = admin(source, root.get("admin", dict, {}))
    relay = smtp_relay(source, root.get("smtp_relay", dict, None))
    ingress = smtp_ingress(source, root.get("smtp_ingress", dict, None), server.mail_domain, mailboxes)
    watcher_config = watcher(source, root.get("watcher", dict, {}))
    outage_config = outage(source, root.get("outage", dict, {}), mailboxes)
    routing_config = routing(source, root.get("routing", dict, {}))
    hours_by_number = number_hours(source, root.get("office_hours", dict, {}), mailboxes)
    web_config = web(source, root.get("web", dict, {}))
    root.done()
    if relay is None:
        emails = [f"mailboxes.{b.id}.notify.email" for b in mailboxes.values() if b.notify.email]
        if admin_config.email:
            emails.append("admin.email")
        for path in emails:
            source.error(path, "needs an smtp_relay section to send e-mail through")
    config = Config(
        source=file,
        server=server,
        twilio=twilio,
        imap=imap,
        gpg=gpg,
        defaults=defaults,
        mailboxes=mailboxes,
        templates_dir=relative(source, templates) if templates else None,
        menu=menu_config,
        admin=admin_config,
        smtp_relay=relay,
        smtp_ingress=ingress,
        watcher=watcher_config,
        outage=outage_config,
        routing=routing_config,
        number_hours=hours_by_number,
        web=web_config,
    )
    if check_keys is not None:
        # Key problems are reported together with every other problem, so one run of check-config
        # shows all. With other errors the config may be half-built: then a failing check adds nothing.
        broken = bool(source.problems)
        try:
            found = check_keys(config)
        except Exception:
            if not broken:
                raise
            found = []
        reported = " ".join(source.problems)
        for key_path, problem in found:
            if not (broken and f" {key_path}: " in reported):  # a malformed fingerprint is said once
                source.error(key_path, problem)
    if source.problems:
        raise ConfigError(source.problems)
    return config
