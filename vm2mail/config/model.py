"""Typed, immutable configuration records; secrets are kept out of ``repr`` so they never reach logs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    public_url: str  # e.g. "https://vm.example.com" (no trailing slash); webhooks are signed against it
    spool_dir: Path
    workers: int = 2
    # Domain used in Message-IDs and the From address: "<RecordingSid@domain>", "voicemail@domain".
    mail_domain: str
    # HMAC key for signed media URLs and menu state; read from env/file, never logged.
    secret_key: str = field(repr=False)
    log_format: str = "text"  # text | json

    @property
    def public_host(self) -> str:
        return urlsplit(self.public_url).hostname or ""


@dataclass(frozen=True, kw_only=True)
class TwilioConfig:
    account_sid: str
    auth_token: str = field(repr=False)
    api_base_url: str = "https://api.twilio.com"
    delete_recordings: bool = True
    sms_from: str | None = None


@dataclass(frozen=True, kw_only=True)
class ImapConfig:
    host: str = "127.0.0.1"
    port: int = 143
    security: str = "starttls"  # tls | starttls | none
    ca_file: Path | None = None  # trust anchor for a private CA (tests, demo); default: system store
    # Optional Dovecot master user ("user*master" login) instead of per-mailbox passwords.
    master_user: str | None = None
    master_password: str | None = field(default=None, repr=False)
    timeout_seconds: float = 30.0


@dataclass(frozen=True, kw_only=True)
class GpgConfig:
    home: Path
    # Fingerprint of the gateway's own playback key (phone menu decrypts with it); optional.
    playback_key: str | None = None


@dataclass(frozen=True, kw_only=True)
class Defaults:
    ring_seconds: int = 20
    max_message_seconds: int = 300
    min_message_seconds: int = 1
    folder: str = "Voicemail"
    language: str = "en-US"
    timezone: str = "Europe/Berlin"
    missed_call_email: bool = True  # a caller who hangs up silently leaves a short "missed call" e-mail
    private_subject: bool = False  # outer Subject generic ("Voicemail") when encrypted


@dataclass(frozen=True, kw_only=True)
class Mailbox:
    id: str  # the mailbox number, e.g. "201"
    name: str
    email: str | None = None
    imap_user: str | None = None
    imap_password: str | None = field(default=None, repr=False)
    numbers: tuple[str, ...] = ()
    forward_to: str | None = None
    gpg_recipients: tuple[str, ...] = ()  # full fingerprints, upper-case hex, no spaces
    members: tuple[str, ...] = ()  # group mailbox: ids of member mailboxes
    ring_seconds: int
    max_message_seconds: int
    min_message_seconds: int
    folder: str
    language: str
    timezone: str
    missed_call_email: bool
    private_subject: bool
    phone_playback: bool = False

    @property
    def is_group(self) -> bool:
        return bool(self.members)

    @property
    def encrypted(self) -> bool:
        return bool(self.gpg_recipients)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, kw_only=True)
class Config:
    source: Path  # the YAML file this was loaded from
    server: ServerConfig
    twilio: TwilioConfig
    imap: ImapConfig
    gpg: GpgConfig
    defaults: Defaults
    mailboxes: dict[str, Mailbox]
    templates_dir: Path | None = None  # overrides for templates/ (falls back to the shipped ones)

    def mailbox_for_number(self, number: str) -> Mailbox | None:
        """The mailbox a called number (E.164) reaches, or None."""
        for mailbox in self.mailboxes.values():
            if number in mailbox.numbers:
                return mailbox
        return None

    def delivery_targets(self, mailbox: Mailbox) -> list[Mailbox]:
        """Mailboxes whose IMAP folders receive a copy: the members of a group, else the mailbox itself."""
        if mailbox.is_group:
            return [self.mailboxes[m] for m in mailbox.members]
        return [mailbox]
