"""The ``stack`` factory: mailboxes backed by fresh Dovecot accounts, keys and a Twilio stand-in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.harness import Account, Stack, free_port
from tests.fixtures.config import ACCOUNT_SID, AUTH_TOKEN
from tests.fixtures.gpg import GpgKeys
from vm2mail.config import Config
from vm2mail.devstack.dovecot import DevDovecot
from vm2mail.devstack.fake_twilio import FakeTwilio


@pytest.fixture
def stack(
    make_config: Callable[..., Config],
    dovecot: DevDovecot,
    imap_account: Callable[[], tuple[str, str]],
    gpg_keys: GpgKeys,
) -> Callable[..., Stack]:
    """``stack(boxes={"201": {"encrypted": True, ...mailbox keys}}, **config overrides)``."""

    def factory(
        boxes: dict[str, dict[str, Any]] | None = None, security: str = "none", **overrides: Any
    ) -> Stack:
        boxes = boxes or {"201": {"encrypted": True}}
        port = free_port()
        mailboxes: dict[str, Any] = {}
        accounts: dict[str, Account] = {}
        for number, (box, spec) in enumerate(boxes.items(), start=1):
            spec = dict(spec)
            if "members" in spec:
                mailboxes[box] = {
                    "name": spec.pop("name", f"Group {box}"),
                    "numbers": [f"+1555000{3000 + number}"],
                    **spec,
                }
                continue
            user, password = imap_account()
            key = gpg_keys(spec.pop("key_name", f"User {box}")) if spec.pop("encrypted", False) else None
            mailboxes[box] = {
                "name": spec.pop("name", f"User {box}"),
                "email": user,
                "imap_user": user,
                "imap_password": password,
                "numbers": [f"+1555000{2000 + number}"],
                **({"gpg_recipients": [key.fingerprint]} if key else {}),
                **spec,
            }
            accounts[box] = Account(mailbox=box, user=user, password=password, key=key)
        imap = dovecot.imap_config(security)
        config = make_config(
            replace_mailboxes=True,
            mailboxes=mailboxes,
            imap={
                "host": imap.host,
                "port": imap.port,
                "security": security,
                "ca_file": str(imap.ca_file),
                "timeout_seconds": 5,
            },
            twilio={"api_base_url": f"http://127.0.0.1:{port}", **overrides.pop("twilio", {})},
            gpg={"home": str(gpg_keys.home)},
            **overrides,
        )
        return Stack(
            config=config,
            dovecot=dovecot,
            fake=FakeTwilio(ACCOUNT_SID, AUTH_TOKEN),
            fake_port=port,
            accounts=accounts,
        )

    return factory
