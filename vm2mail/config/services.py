"""Config sections for the services around the call path: menu, alerts, SMTP, watcher, notifications."""

from __future__ import annotations

import ipaddress
import re
from datetime import time
from typing import Any

from vm2mail.config.model import (
    AdminConfig,
    Mailbox,
    MenuConfig,
    NotifyConfig,
    SmtpClientRule,
    SmtpIngressConfig,
    SmtpRelayConfig,
    WatcherConfig,
)
from vm2mail.config.schema import Section, e164, listen, positive, relative, strings
from vm2mail.config.yamlsource import Source

_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HOURS = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])$")
_SECURITY = ("tls", "starttls", "none")


def _email(value: Any) -> str | None:
    return None if _ADDRESS.match(value) else f"{value!r} is not an e-mail address"


def _security(value: Any) -> str | None:
    return None if value in _SECURITY else "must be tls, starttls or none"


def _network(source: Source, path: str, value: str) -> None:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        source.error(path, f"{value!r} is not an address or network (like 10.0.0.0/8)")


def _regex(value: Any) -> str | None:
    try:
        re.compile(value)
    except re.error as exc:
        return f"not a regular expression: {exc}"
    return None


def _checked_list(source: Source, path: str, value: Any, check: Any) -> tuple[str, ...]:
    items = strings(source, path, value)
    for i, item in enumerate(items):
        if (problem := check(item)) is not None:
            source.error(f"{path}[{i}]", problem)
    return tuple(items)


def _quiet_hours(source: Source, path: str, value: str | None) -> tuple[time, time] | None:
    if value is None:
        return None
    match = _HOURS.match(value)
    if match is None:
        source.error(path, f"{value!r} must be HH:MM-HH:MM (like 22:00-07:00)")
        return None
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    return time(h1, m1), time(h2, m2)


def notify(source: Source, path: str, data: Any, base: NotifyConfig | None) -> NotifyConfig:
    """A mailbox's ``notify`` keys override the ``defaults.notify`` ones key by key."""
    base = base or NotifyConfig()
    if data is None:
        return base
    s = Section(source, path, data)
    hours = s.get("quiet_hours", str, None)
    config = NotifyConfig(
        sms=_checked_list(source, f"{path}.sms", s.get("sms", list, list(base.sms)), e164),
        email=_checked_list(source, f"{path}.email", s.get("email", list, list(base.email)), _email),
        quiet_hours=_quiet_hours(source, f"{path}.quiet_hours", hours) if hours else base.quiet_hours,
        reminder_minutes=s.get("reminder_minutes", int, base.reminder_minutes, positive),
        reminder_max=s.get("reminder_max", int, base.reminder_max),
    )
    s.done()
    return config


def menu(source: Source, data: Any, mailboxes: dict[str, Mailbox]) -> MenuConfig:
    s = Section(source, "menu", data)
    config = MenuConfig(
        numbers=_checked_list(source, "menu.numbers", s.get("numbers", list, []), e164),
        max_pin_attempts=s.get("max_pin_attempts", int, 3, positive),
        lockout_failures=s.get("lockout_failures", int, 10, positive),
        lockout_minutes=s.get("lockout_minutes", int, 30, positive),
        session_minutes=s.get("session_minutes", int, 30, positive),
        media_ttl_seconds=s.get("media_ttl_seconds", int, 300, positive),
    )
    s.done()
    for i, number in enumerate(config.numbers):
        for box in mailboxes.values():
            if number in box.numbers:
                source.error(f"menu.numbers[{i}]", f"{number} is also a number of mailbox {box.id}")
    return config


def admin(source: Source, data: Any) -> AdminConfig:
    s = Section(source, "admin", data)
    config = AdminConfig(email=s.get("email", str, None, _email), sms=s.get("sms", str, None, e164))
    s.done()
    return config


def smtp_relay(source: Source, data: Any) -> SmtpRelayConfig | None:
    if data is None:
        return None
    s = Section(source, "smtp_relay", data)
    security = s.get("security", str, "starttls", _security)
    ca_file = s.get("ca_file", str, None)
    config = SmtpRelayConfig(
        host=s.get("host", str) or "",
        port=s.get("port", int, {"tls": 465, "starttls": 587}.get(security, 25), positive),
        security=security,
        ca_file=relative(source, ca_file) if ca_file else None,
        user=s.get("user", str, None),
        password=s.get("password", str, None),
        sender=s.get("sender", str, check=_email) or "",
        timeout_seconds=s.get("timeout_seconds", float, 30.0, positive),
    )
    s.done()
    if config.user and not config.password:
        source.error("smtp_relay.password", "is required when user is set")
    return config


def _client_rule(source: Source, path: str, data: Any) -> SmtpClientRule:
    s = Section(source, path, data)
    network = s.get("network", str, None)
    if network:
        _network(source, f"{path}.network", network)
    rule = SmtpClientRule(
        network=network,
        user=s.get("user", str, None),
        caller_pattern=s.get("caller_pattern", str, None, _regex),
        caller_name_pattern=s.get("caller_name_pattern", str, None, _regex),
        duration_pattern=s.get("duration_pattern", str, None, _regex),
    )
    s.done()
    if not rule.network and not rule.user:
        source.error(path, "needs network or user to say which client the patterns apply to")
    return rule


def smtp_ingress(
    source: Source, data: Any, mail_domain: str, mailboxes: dict[str, Mailbox]
) -> SmtpIngressConfig | None:
    if data is None:
        return None
    s = Section(source, "smtp_ingress", data)
    host, port = listen(source, "smtp_ingress.listen", s.get("listen", str, "127.0.0.1:2525"))
    cert, key = s.get("tls_cert", str, None), s.get("tls_key", str, None)
    if bool(cert) != bool(key):
        source.error("smtp_ingress.tls_cert", "tls_cert and tls_key go together")
    domains = strings(source, "smtp_ingress.domains", s.get("domains", list, [mail_domain]))
    users_raw = s.get("users", dict, {})
    users: dict[str, str] = {}
    for name, secret in users_raw.items():
        user_section = Section(source, "smtp_ingress.users", {str(name): secret})
        value = user_section.get(str(name), str)
        if value:
            users[str(name)] = value
    networks = strings(source, "smtp_ingress.allowed_networks", s.get("allowed_networks", list, []))
    for i, network in enumerate(networks):
        _network(source, f"smtp_ingress.allowed_networks[{i}]", network)
    clients_raw = s.get("clients", list, [])
    config = SmtpIngressConfig(
        listen_host=host,
        listen_port=port,
        hostname=s.get("hostname", str, mail_domain),
        tls_cert=relative(source, cert) if cert else None,
        tls_key=relative(source, key) if key else None,
        domains=tuple(d.lower() for d in domains),
        users=users,
        allowed_networks=tuple(networks),
        max_message_bytes=s.get("max_message_bytes", int, 25 * 1024 * 1024, positive),
        reply_domain=s.get("reply_domain", str, domains[0] if domains else mail_domain).lower(),
        reply_max_chars=s.get("reply_max_chars", int, 320, positive),
        reply_token_days=s.get("reply_token_days", int, 30, positive),
        clients=tuple(
            _client_rule(source, f"smtp_ingress.clients[{i}]", rule) for i, rule in enumerate(clients_raw)
        ),
    )
    s.done()
    if not config.domains:
        source.error("smtp_ingress.domains", "needs at least one domain")
    if users and not config.tls_cert:
        source.error("smtp_ingress.users", "AUTH needs TLS: set tls_cert and tls_key")
    seen: dict[str, str] = {}
    for box in mailboxes.values():
        for i, alias in enumerate((box.id, *box.aliases)):
            other = seen.setdefault(alias.lower(), box.id)
            if other != box.id:
                source.error(
                    f"mailboxes.{box.id}.aliases[{i - 1}]", f"{alias!r} already names mailbox {other}"
                )
    return config


def watcher(source: Source, data: Any) -> WatcherConfig:
    s = Section(source, "watcher", data)
    config = WatcherConfig(
        enabled=s.get("enabled", bool, True),
        idle_seconds=s.get(
            "idle_seconds",
            int,
            25 * 60,
            lambda v: None if 0 < v <= 29 * 60 else "must be between 1 and 1740 (RFC 2177: 29 minutes)",
        ),
        poll_seconds=s.get("poll_seconds", int, 30, positive),
        reminder_check_seconds=s.get("reminder_check_seconds", int, 60, positive),
    )
    s.done()
    return config
