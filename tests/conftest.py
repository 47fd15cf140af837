"""Test fixtures are factories living in tests/fixtures/, one module per real component."""

pytest_plugins = [
    "tests.fixtures.config",
    "tests.fixtures.dovecot",
    "tests.fixtures.faulty_imap",
    "tests.fixtures.gpg",
    "tests.fixtures.smtp",
    "tests.fixtures.twilio",
]
