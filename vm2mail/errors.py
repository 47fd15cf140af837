"""One exception root with a subclass per failure domain, so each edge maps failures to its wire reply."""

from __future__ import annotations


class Vm2mailError(Exception):
    """Root of every error vm2mail raises on purpose.

    ``temporary`` tells the spool worker whether retrying later can help (IMAP down, Twilio 5xx)
    or whether the job must move to ``failed/`` with the reason (media 404, corrupt audio, no key).
    """

    temporary: bool = False

    def __init__(self, message: str, *, temporary: bool | None = None) -> None:
        super().__init__(message)
        if temporary is not None:
            self.temporary = temporary


class ConfigError(Vm2mailError):
    """The YAML configuration is invalid; ``problems`` holds one ``file:line: key: message`` each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class TelephonyError(Vm2mailError):
    """A Twilio webhook, REST call or recording download failed."""


class SignatureError(TelephonyError):
    """A webhook's X-Twilio-Signature does not validate: the request is refused with 403."""


class AudioError(Vm2mailError):
    """A recording cannot be decoded or encoded (corrupt, empty, unsupported)."""


class CryptoError(Vm2mailError):
    """Encryption to a mailbox's keys failed (no usable key, gpg error)."""


class MailStoreError(Vm2mailError):
    """The IMAP server refused or could not be reached; usually temporary."""

    temporary = True


class SpoolError(Vm2mailError):
    """The durable spool could not be written (disk full, permissions): the front door must not ack."""

    temporary = True
