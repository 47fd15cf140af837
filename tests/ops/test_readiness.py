"""Degraded, not down: a server without the menu's METADATA, and deliveries waiting for a retry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.cli.conftest import cli
from tests.e2e.harness import Stack, gateway_up, post_recording_callback
from tests.ops.test_health import check, probe
from vm2mail.config import Config
from vm2mail.devstack.dovecot import DevDovecot
from vm2mail.pinhash import hash_pin

PIN_HASH = hash_pin("4711")


@pytest.fixture(scope="module")
def dovecot_without_metadata(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevDovecot]:
    server = DevDovecot(Path(tmp_path_factory.mktemp("dovecot-nometa")), metadata=False)
    server.add_user("menu@example.com", "menu-pw")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def menu_config(make_config: Callable[..., Config], dovecot: DevDovecot, **box: Any) -> Config:
    imap = dovecot.imap_config("none")
    return make_config(
        replace_mailboxes=True,
        imap={"host": imap.host, "port": imap.port, "security": "none", "timeout_seconds": 5},
        mailboxes={
            "201": {
                "name": "Menu User",
                "imap_user": "menu@example.com",
                "imap_password": "menu-pw",
                "numbers": ["+15550002001"],
                **box,
            }
        },
    )


def test_server_without_metadata_degrades_health_for_menu_mailboxes(
    make_config: Callable[..., Config], dovecot_without_metadata: DevDovecot
) -> None:
    config = menu_config(make_config, dovecot_without_metadata, pin=PIN_HASH)
    status, text, _ = check(config)
    assert status == 200, text
    degraded, line = text.splitlines()
    assert degraded == "degraded"
    assert line.startswith("metadata: mailboxes.201: the IMAP server does not offer METADATA"), line
    # Without a PIN nobody logs in by phone: nothing needs METADATA, nothing to report.
    assert check(menu_config(make_config, dovecot_without_metadata))[:2] == (200, "ok\n")


def test_server_with_metadata_and_a_menu_mailbox_is_ok(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {"pin": PIN_HASH}})
    assert check(s.config)[:2] == (200, "ok\n")


def test_check_config_warns_about_missing_metadata_and_strict_refuses(
    make_config: Callable[..., Config], dovecot_without_metadata: DevDovecot
) -> None:
    config = menu_config(make_config, dovecot_without_metadata, pin=PIN_HASH)
    line = next(
        i
        for i, text in enumerate(config.source.read_text().splitlines(), 1)
        if text.strip().startswith("'201'")
    )
    expected = f"{config.source.name}:{line}: mailboxes.201: the IMAP server does not offer METADATA"
    result = cli("check-config", "-c", str(config.source))
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(f"WARNING: {expected}"), result.stderr
    result = cli("check-config", "--strict", "-c", str(config.source))
    assert result.returncode == 1 and result.stderr.startswith(expected), result.stderr
    # --offline (the systemd unit's ExecStartPre) does not wait for IMAP, so it cannot know.
    result = cli("check-config", "--offline", "--strict", "-c", str(config.source))
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_deliveries_waiting_for_a_retry_show_in_health_and_metrics(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {}})  # the Twilio stand-in is not started: every recording download fails

    async def scenario() -> tuple[Any, str]:
        async with gateway_up(s.config) as gateway:
            sid = "RE" + "42" * 16
            account = s.config.twilio.account_sid
            url = f"{s.config.twilio.api_base_url}/2010-04-01/Accounts/{account}/Recordings/{sid}"
            assert (
                await post_recording_callback(
                    s, gateway.port, mailbox="201", recording_sid=sid, recording_url=url
                )
                == 204
            )
            deadline = time.monotonic() + 60
            while True:
                status, _, body = await probe(gateway.port, "application/json")
                if "retrying" in body["degraded"] or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{gateway.port}/metrics") as r,
            ):
                return (status, body), await r.text()

    (status, body), metrics = asyncio.run(scenario())
    assert status == 200 and body["status"] == "degraded", body
    first, example = body["degraded"]["retrying"]
    assert first.startswith("1 deliveries waiting for a retry"), first
    assert example.startswith(f"twilio-RE{'42' * 16}: attempt 1 failed, retry in"), example
    assert "vm2mail_spool_retrying 1.0" in metrics.splitlines()
    assert any(line.startswith("vm2mail_spool_retrying_oldest_seconds ") for line in metrics.splitlines())
