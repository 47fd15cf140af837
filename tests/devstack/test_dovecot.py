"""The throwaway Dovecot: valid config, users added while running, TLS with its CA, clean stop and restart."""

from __future__ import annotations

import imaplib
import socket
import ssl
from collections.abc import Callable

import pytest

from tests.fixtures.dovecot import MailClient
from vm2mail.devstack.dovecot import DevDovecot


def test_config_validates_and_has_expected_settings(dovecot: DevDovecot) -> None:
    out = dovecot.validate()
    for setting in (
        "mail_max_userip_connections = 1000",
        "imap_metadata = yes",
        "auth_master_user_separator = *",
    ):
        assert setting in out


def test_user_added_while_running_can_log_in_at_once(
    dovecot: DevDovecot, mail_client: Callable[[str, str], MailClient]
) -> None:
    for n in range(3):  # several in the same second: each must work immediately
        dovecot.add_user(f"fresh{n}@example.com", f"pw:{n}")
        assert "Trash" in mail_client(f"fresh{n}@example.com", f"pw:{n}").list_folders()


def test_special_use_folders(dovecot: DevDovecot, imap_account: Callable[..., tuple[str, str]]) -> None:
    user, password = imap_account()
    folders = dict(MailClient(dovecot, user, password).list_folders_with_flags())
    assert "\\Trash" in folders["Trash"]
    assert {"INBOX", "Sent", "Drafts", "Junk"} <= set(folders)


def test_implicit_tls_and_starttls_verify_against_ca(
    dovecot: DevDovecot, imap_account: Callable[..., tuple[str, str]]
) -> None:
    user, password = imap_account()
    ctx = ssl.create_default_context(cafile=str(dovecot.ca_file))
    with imaplib.IMAP4_SSL("localhost", dovecot.tls_port, ssl_context=ctx) as imap:
        assert imap.login(user, password)[0] == "OK"
    with imaplib.IMAP4(dovecot.host, dovecot.port) as imap:
        imap.starttls(ctx)
        assert imap.login(f'"{user}*{dovecot.master_user}"', dovecot.master_password)[0] == "OK"
    system_only = ssl.create_default_context()  # system trust store only: the dev CA is not in it
    with (
        socket.create_connection((dovecot.host, dovecot.tls_port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        system_only.wrap_socket(raw, server_hostname=dovecot.host).close()


def test_stop_and_restart_on_same_ports(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = DevDovecot(tmp_path_factory.mktemp("dc"))
    server.add_user("a@example.com", "pw")
    server.start()
    try:
        port, tls_port = server.port, server.tls_port
        session = imaplib.IMAP4(server.host, server.port)
        session.login("a@example.com", "pw")
        server.stop()
        assert not server.running
        with pytest.raises(OSError):
            socket.create_connection((server.host, port), timeout=1).close()
        with pytest.raises((imaplib.IMAP4.abort, OSError)):
            session.noop()  # the session process is gone too, not only the listener
        session.shutdown()
        server.start()
        assert (server.port, server.tls_port) == (port, tls_port)
        assert MailClient(server, "a@example.com", "pw").list_folders()
    finally:
        server.stop()
