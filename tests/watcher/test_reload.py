"""Login failures are retried with backoff; a reloaded config adds, drops and updates watched folders."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping

from tests.watcher.conftest import Setup, in_thread, until, voicemail, watching
from vm2mail import metrics
from vm2mail.config import Config
from vm2mail.mailstore.voicemails import Counts


def with_boxes(config: Config, **changes: Mapping[str, object]) -> Config:
    """``config`` with mailbox fields replaced (``{"202": {"imap_password": "x"}}``) or dropped (``{}``)."""
    boxes = dict(config.mailboxes)
    for box_id, fields in changes.items():
        if fields:
            boxes[box_id] = dataclasses.replace(boxes[box_id], **fields)  # type: ignore[arg-type]
        else:
            del boxes[box_id]
    return dataclasses.replace(config, mailboxes=boxes)


def test_login_failure_then_reload(setup: Callable[..., Setup]) -> None:
    s = setup({"201": {}, "202": {}})
    for client in s.clients.values():
        client.create_folder("Voicemail")
        client.append("Voicemail", voicemail())
    current = [with_boxes(s.config, **{"202": {"imap_password": "wrong-password"}})]

    async def scenario() -> None:
        async with watching(lambda: current[0]) as (watcher, _):
            await until(lambda: watcher.counts("201") is not None, "201 synced")
            bad = watcher.session("202")
            assert bad is not None
            await until(lambda: bad.reconnects >= 2, "login retried")
            assert watcher.counts("202") is None and not bad.online

            current[0] = s.config  # the admin fixes the password: SIGHUP
            await until(
                lambda: watcher.counts("202") == Counts(new=1, heard=0, saved=0, total=1), "202 synced"
            )
            good = watcher.session("202")
            assert good is not None and good is not bad

            current[0] = with_boxes(s.config, **{"201": {}, "202": {"max_messages": 1}})
            await until(lambda: watcher.session("201") is None, "201 dropped")
            assert watcher.session("202") is good  # only limits changed: same connection
            assert good.mailbox.max_messages == 1
            assert metrics.WATCHED_FOLDERS._value.get() == 1
            await in_thread(s.clients["202"].append, "Voicemail", voicemail())
            await until(
                lambda: watcher.counts("202") == Counts(new=2, heard=0, saved=0, total=2), "still watched"
            )

    asyncio.run(scenario())
