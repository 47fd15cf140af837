"""Config sections around the call path: menu, notify, SMTP relay and ingress, watcher, PIN hashes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import time
from pathlib import Path
from typing import Any

import pytest

from vm2mail.config import Config
from vm2mail.errors import ConfigError
from vm2mail.pinhash import hash_pin, verify_pin

RELAY = {"host": "smtp.example.com", "sender": "voicemail@vm.example.com"}


def problems(make_config: Callable[..., Config], **overrides: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        make_config(**overrides)
    return caught.value.problems


def test_defaults_when_sections_are_absent(make_config: Callable[..., Config]) -> None:
    config = make_config()
    box = config.mailboxes["201"]
    assert config.smtp_ingress is None and config.smtp_relay is None
    assert config.menu.max_pin_attempts == 3 and config.watcher.idle_seconds == 25 * 60
    assert box.max_messages == 100 and box.trash_days == 30 and box.keep_saved and box.pin_hash is None
    assert not box.notify.enabled


def test_mailbox_notify_overrides_defaults_key_by_key(make_config: Callable[..., Config]) -> None:
    config = make_config(
        smtp_relay=RELAY,
        defaults={"notify": {"quiet_hours": "22:00-07:00", "reminder_minutes": 60}},
        mailboxes={"201": {"notify": {"sms": ["+15550001111"], "email": ["anna@phone.example.com"]}}},
    )
    notify = config.mailboxes["201"].notify
    assert notify.sms == ("+15550001111",) and notify.email == ("anna@phone.example.com",)
    assert notify.quiet_hours == (time(22, 0), time(7, 0)) and notify.reminder_minutes == 60


def test_bad_notify_values_name_their_line_and_key(make_config: Callable[..., Config]) -> None:
    found = problems(
        make_config,
        mailboxes={"201": {"notify": {"sms": ["555-1234"], "quiet_hours": "10pm-7am", "email": ["a@b.c"]}}},
    )
    text = "\n".join(found)
    assert ": mailboxes.201.notify.sms[0]: '555-1234' is not an E.164 number" in text
    assert ": mailboxes.201.notify.quiet_hours: '10pm-7am' must be HH:MM-HH:MM" in text
    assert "mailboxes.201.notify.email: needs an smtp_relay section" in text
    assert all(line.split(":")[1].isdigit() for line in found), found  # file:LINE: key: message


def test_pin_must_be_a_hash_never_the_pin(make_config: Callable[..., Config]) -> None:
    found = problems(make_config, mailboxes={"201": {"pin": "1234"}})
    assert any("mailboxes.201.pin: must be a PIN hash" in p for p in found)
    assert not any("1234" in p for p in found)  # the PIN itself is never echoed
    stored = hash_pin("4711")
    config = make_config(mailboxes={"201": {"pin": stored}})
    assert verify_pin("4711", config.mailboxes["201"].pin_hash or "")
    assert not verify_pin("4712", config.mailboxes["201"].pin_hash or "")
    assert "scrypt" not in repr(config.mailboxes["201"])


def test_menu_number_cannot_also_reach_a_mailbox(make_config: Callable[..., Config]) -> None:
    found = problems(make_config, menu={"numbers": ["+15550002001"]})
    assert any("menu.numbers[0]: +15550002001 is also a number of mailbox 201" in p for p in found)


def test_smtp_ingress_auth_needs_tls_and_aliases_are_unique(make_config: Callable[..., Config]) -> None:
    found = problems(
        make_config,
        smtp_ingress={
            "domains": ["vm.example.com"],
            "users": {"pbx": "pw"},
            "allowed_networks": ["10.0.0/8"],
        },
        mailboxes={"202": {"name": "B", "imap_user": "b", "imap_password": "x", "aliases": ["201"]}},
    )
    text = "\n".join(found)
    assert "smtp_ingress.users: AUTH needs TLS" in text
    assert "smtp_ingress.allowed_networks[0]: '10.0.0/8' is not an address or network" in text
    assert "mailboxes.202.aliases[0]: '201' already names mailbox 201" in text


def test_smtp_ingress_reads_listen_domains_and_client_rules(make_config: Callable[..., Config]) -> None:
    config = make_config(
        smtp_ingress={
            "listen": "127.0.0.2:2525",
            "domains": ["VM.example.com"],
            "allowed_networks": ["10.0.0.0/8"],
            "clients": [{"network": "10.1.0.0/16", "caller_pattern": r"from (\+?\d+)"}],
        }
    )
    ingress = config.smtp_ingress
    assert ingress is not None
    assert (ingress.listen_host, ingress.listen_port) == ("127.0.0.2", 2525)
    assert ingress.domains == ("vm.example.com",) and ingress.reply_domain == "vm.example.com"
    assert ingress.clients[0].caller_pattern == r"from (\+?\d+)"
    found = problems(make_config, smtp_ingress={"clients": [{"caller_pattern": "(unclosed"}]})
    assert any("smtp_ingress.clients[0]: needs network or user" in p for p in found)
    assert any("smtp_ingress.clients[0].caller_pattern: not a regular expression" in p for p in found)


def test_watcher_idle_must_stay_under_rfc2177_limit(make_config: Callable[..., Config]) -> None:
    found = problems(make_config, watcher={"idle_seconds": 1800})
    assert any("watcher.idle_seconds: must be between 1 and 1740" in p for p in found)


def test_the_shipped_example_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """config/example.yaml stays a working file: only its secrets, SID and TLS files are site-specific."""
    from tests.fixtures.config import ACCOUNT_SID
    from vm2mail.config import load_config

    text = (Path(__file__).resolve().parents[2] / "config" / "example.yaml").read_text()
    text = text.replace("/etc/vm2mail/", f"{tmp_path}/").replace("AC" + "x" * 32, ACCOUNT_SID)
    for name in ("secret_key", "imap_master", "monitor-token"):
        (tmp_path / name).write_text("a-long-enough-secret-value\n")
    for var in ("TWILIO_AUTH_TOKEN", "SMTP_RELAY_PASSWORD", "PBX3CX_SMTP_PASSWORD"):
        monkeypatch.setenv(var, "secret")
    (tmp_path / "example.yaml").write_text(text)
    config = load_config(tmp_path / "example.yaml")
    assert config.mailboxes["201"].aliases == ("anna",) and config.menu.numbers == ("+15550001999",)
    assert config.smtp_ingress is not None and config.smtp_ingress.users == {"pbx3cx": "secret"}
