"""Typed, immutable configuration records; secrets are kept out of ``repr`` so they never reach logs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
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
    # What a caller may wait for the mail store (greeting, full check, a menu step); then cache/default.
    call_budget_seconds: float = 1.5
    # spool/done/ (delivered jobs) and spool/replies/ (sent SMS replies) are pruned after this long.
    spool_keep_days: int = 30

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
    # REST calls and recording downloads: a Twilio (or network) silent this long fails the attempt.
    timeout_seconds: float = 30.0


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
class MenuConfig:
    """The phone menu (dial-in access to the same IMAP folders)."""

    numbers: tuple[str, ...] = ()  # dedicated access numbers whose voice URL leads to the menu
    max_pin_attempts: int = 3  # wrong PINs in one call before it ends
    lockout_failures: int = 10  # failed logins across calls (within lockout_minutes) that lock a mailbox
    lockout_minutes: int = 30  # how long a locked mailbox stays locked
    session_minutes: int = 30  # a login is valid this long (signed into every menu URL)
    media_ttl_seconds: int = 300  # signed <Play> URLs expire after this


@dataclass(frozen=True, kw_only=True)
class AdminConfig:
    """Where the gateway alerts its admin (PIN lockouts, failed jobs, expiring keys)."""

    email: str | None = None  # sent through smtp_relay
    sms: str | None = None  # E.164, sent through twilio.sms_from


@dataclass(frozen=True, kw_only=True)
class SmtpRelayConfig:
    """The outgoing SMTP server for notification and alert e-mails."""

    host: str
    port: int = 587
    security: str = "starttls"  # tls | starttls | none
    ca_file: Path | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str  # envelope and header From, e.g. "voicemail@vm.example.com"
    timeout_seconds: float = 30.0  # per connect, read and write: a silent relay fails the attempt


@dataclass(frozen=True, kw_only=True)
class SmtpClientRule:
    """How to read caller details out of one PBX's e-mails, where they are not in standard headers.

    Each pattern is a regular expression searched in the Subject, then the text body; its first
    group (or the group named like the field) is the value.
    """

    network: str | None = None  # client address range, e.g. "10.0.0.0/8"
    user: str | None = None  # or the AUTH user name the PBX logs in with
    caller_pattern: str | None = None
    caller_name_pattern: str | None = None
    duration_pattern: str | None = None


@dataclass(frozen=True, kw_only=True)
class SmtpIngressConfig:
    """The SMTP front door for voicemail e-mails from PBXs and replies to callers."""

    listen_host: str = "127.0.0.1"
    listen_port: int = 2525
    hostname: str  # announced in the greeting and EHLO
    tls_cert: Path | None = None  # STARTTLS offered when both are set
    tls_key: Path | None = None
    domains: tuple[str, ...]  # mailbox addresses: "<mailbox id or alias>@<domain>"
    users: dict[str, str] = field(default_factory=dict, repr=False)  # AUTH user -> password
    allowed_networks: tuple[str, ...] = ()  # clients sending without AUTH, e.g. ("10.0.0.0/8",)
    max_message_bytes: int = 25 * 1024 * 1024
    reply_domain: str  # Reply-To: reply+<token>@reply_domain (defaults to the first domain)
    reply_max_chars: int = 320
    reply_token_days: int = 30
    clients: tuple[SmtpClientRule, ...] = ()


@dataclass(frozen=True, kw_only=True)
class WatcherConfig:
    """The IMAP watcher: follows flags and expunges in every mailbox folder."""

    enabled: bool = True
    idle_seconds: int = 25 * 60  # re-issue IDLE well before RFC 2177's 29 minutes
    poll_seconds: int = 30  # for servers without IDLE
    reminder_check_seconds: int = 60


@dataclass(frozen=True, kw_only=True)
class WebConfig:
    """The web inbox under /inbox/ (vm2mail.web): browser access to the same IMAP folders."""

    enabled: bool = True
    session_minutes: int = 8 * 60  # a login cookie expires after this (signed into the cookie)
    page_size: int = 50  # voicemails per list page


@dataclass(frozen=True, kw_only=True)
class NotifyConfig:
    """Per-mailbox notifications when a voicemail lands (never with audio)."""

    sms: tuple[str, ...] = ()  # E.164 numbers
    email: tuple[str, ...] = ()  # addresses, sent through smtp_relay
    quiet_hours: tuple[time, time] | None = None  # (start, end) in the mailbox's time zone
    reminder_minutes: int | None = None  # remind when still unheard after this; None: no reminders
    reminder_max: int = 3

    @property
    def enabled(self) -> bool:
        return bool(self.sms or self.email)


@dataclass(frozen=True, kw_only=True)
class OfficeHours:
    """Weekly opening hours in the mailbox's time zone plus closed dates (routing/hours.py decides)."""

    # weekly[0] is Monday: the (start, end) ranges of that day, sorted and non-overlapping; end > start.
    weekly: tuple[tuple[tuple[time, time], ...], ...] = ((),) * 7
    holidays: frozenset[str] = frozenset()  # ISO dates ("2026-12-24") closed all day


@dataclass(frozen=True, kw_only=True)
class OutageConfig:
    """Company outage mode: which called numbers it covers and whose voicemail takes those calls."""

    numbers: tuple[str, ...] | None = None  # None: every number
    routes: dict[str, str] = field(default_factory=dict)  # called number -> mailbox id
    default_mailbox: str | None = None  # for covered numbers without a route (None: their own mailbox)
    state_mailbox: str | None = None  # whose folder keeps the switch (METADATA); None: the first one
    monitor_token: str | None = field(default=None, repr=False)  # POST /outage bearer token

    def covers(self, number: str) -> bool:
        return self.numbers is None or number in self.numbers


@dataclass(frozen=True, kw_only=True)
class RoutingConfig:
    """How the call path reads switched state and guards the PBX behind ``forward_to``."""

    cache_seconds: float = 5.0  # switched state read from IMAP is reused this long
    read_timeout_seconds: float = 1.5  # the call path waits at most this for IMAP, then uses the last state
    breaker_failures: int = 5  # failed dials in a row (within the window) that open the breaker
    breaker_window_seconds: int = 300
    breaker_open_seconds: int = 60  # calls skip the PBX this long, then one call probes it


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
    private: bool = False  # every caller detail only inside the encryption (implies private_subject)
    country: str | None = None  # ISO 3166 code (e.g. "DE"): reads national numbers, shows them nationally
    max_messages: int = 100  # a full mailbox takes no new recordings
    retention_days: int | None = None  # voicemails older than this move to Trash; None: kept
    trash_days: int | None = 30  # the gateway empties what it put in Trash after this
    keep_saved: bool = True  # retention spares starred (\Flagged) voicemails
    group_sync: bool = True  # group copies follow when one member hears or deletes one
    notify: NotifyConfig = field(default_factory=NotifyConfig)


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
    private: bool = False  # outer headers say "Voicemail" only; caller details in protected headers
    country: str | None = None  # ISO 3166 code: how numbers are read from PBXs and shown to this user
    pin_hash: str | None = field(default=None, repr=False)  # `vm2mail hash-pin` output (scrypt)
    aliases: tuple[str, ...] = ()  # extra SMTP ingress local parts, e.g. ("anna", "sales-anna")
    max_messages: int = 100
    retention_days: int | None = None
    trash_days: int | None = 30
    keep_saved: bool = True
    group_sync: bool = True
    allow_plain: bool = False  # deliver unencrypted when every key is unusable (instead of waiting)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    office_hours: OfficeHours | None = None  # None: always open

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
    menu: MenuConfig = field(default_factory=MenuConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    smtp_relay: SmtpRelayConfig | None = None
    smtp_ingress: SmtpIngressConfig | None = None
    watcher: WatcherConfig = field(default_factory=WatcherConfig)
    outage: OutageConfig = field(default_factory=OutageConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    # Office hours per called number (top-level ``office_hours``); they win over the mailbox's own.
    number_hours: dict[str, OfficeHours] = field(default_factory=dict)
    web: WebConfig = field(default_factory=WebConfig)

    def mailbox_for_number(self, number: str) -> Mailbox | None:
        """The mailbox a called number (E.164) reaches, or None."""
        for mailbox in self.mailboxes.values():
            if number in mailbox.numbers:
                return mailbox
        return None

    def mailbox_for_owner(self, number: str) -> Mailbox | None:
        """The mailbox whose owner's phone (``forward_to``) is ``number``, or None."""
        for mailbox in self.mailboxes.values():
            if not mailbox.is_group and mailbox.forward_to == number:
                return mailbox
        return None

    def groups_of(self, member_id: str) -> list[Mailbox]:
        """The group mailboxes that ``member_id`` belongs to."""
        return [box for box in self.mailboxes.values() if member_id in box.members]

    def delivery_targets(self, mailbox: Mailbox) -> list[Mailbox]:
        """Mailboxes whose IMAP folders receive a copy: the members of a group, else the mailbox itself."""
        if mailbox.is_group:
            return [self.mailboxes[m] for m in mailbox.members]
        return [mailbox]
