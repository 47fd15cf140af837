"""Composition root: one asyncio process runs the webhooks, the spool workers and the IMAP store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from vm2mail.config import Config, load_config
from vm2mail.errors import Vm2mailError
from vm2mail.ingest.pgp import Encryptor
from vm2mail.ingest.spool import Spool
from vm2mail.ingest.worker import Pipeline
from vm2mail.mailstore.store import ImapStore
from vm2mail.telephony.rest import TwilioRest
from vm2mail.telephony.webhooks import TelephonyDeps, add_routes

log = logging.getLogger(__name__)


def key_problems(config: Config) -> list[tuple[str, str]]:
    """(key path, problem) for each configured fingerprint the gateway's keyring cannot encrypt to."""
    wanted = [fpr for box in config.mailboxes.values() for fpr in box.gpg_recipients]
    if not wanted and not config.gpg.playback_key:
        return []  # nothing is encrypted: the keyring need not exist
    try:
        encryptor = Encryptor(config.gpg.home)
    except Vm2mailError as exc:
        return [("gpg.home", str(exc))]
    problems = []
    for box in config.mailboxes.values():
        for i, fpr in enumerate(box.gpg_recipients):
            if (problem := encryptor.check_key(fpr)) is not None:
                problems.append((f"mailboxes.{box.id}.gpg_recipients[{i}]", f"key {fpr}: {problem}"))
    if config.gpg.playback_key and (problem := encryptor.check_key(config.gpg.playback_key)):
        problems.append(("gpg.playback_key", f"key {config.gpg.playback_key}: {problem}"))
    return problems


def load(path: Path) -> Config:
    return load_config(path, check_keys=key_problems)


@dataclass
class Gateway:
    """Everything ``serve`` runs; tests start it in-process on a free port."""

    config: Config
    spool: Spool
    store: ImapStore
    http: aiohttp.ClientSession
    runner: web.AppRunner
    pipeline: Pipeline
    port: int = 0

    def current(self) -> Config:
        return self.config

    @classmethod
    async def start(cls, config: Config, *, port: int | None = None) -> Gateway:
        spool = Spool(config.server.spool_dir)
        await asyncio.to_thread(spool.open_sync)
        store = ImapStore(config.imap)
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300, sock_connect=10))
        rest = TwilioRest(config.twilio)
        app = web.Application(client_max_size=1 << 20)
        gateway = cls(
            config=config,
            spool=spool,
            store=store,
            http=http,
            runner=web.AppRunner(app),
            pipeline=Pipeline(
                config=lambda: gateway.config,
                spool=spool,
                store=store,
                http=http,
                delete_recording=rest.delete_recording,
            ),
        )
        add_routes(app, TelephonyDeps(config=gateway.current, spool=spool))
        app.router.add_get("/healthz", gateway.healthz)
        await gateway.runner.setup()
        host = config.server.listen_host
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, config.server.listen_port if port is None else port))
        await web.SockSite(gateway.runner, sock).start()
        gateway.port = sock.getsockname()[1]
        log.info(
            "listening on %s:%d, public URL %s, spool %s",
            config.server.listen_host,
            gateway.port,
            config.server.public_url,
            config.server.spool_dir,
        )
        return gateway

    async def healthz(self, request: web.Request) -> web.Response:
        failures = []
        if not await asyncio.to_thread(self.spool.writable):
            failures.append("spool: not writable")
        try:
            await self.store.ping()
        except Vm2mailError as exc:
            failures.append(f"imap: {exc}")
        if failures:
            return web.Response(status=503, text="\n".join(failures) + "\n")
        return web.Response(text="ok\n")

    async def run_workers(self) -> None:
        await self.pipeline.run(self.config.server.workers)

    async def close(self) -> None:
        await self.runner.cleanup()
        await self.store.close()
        await self.http.close()


async def serve(config: Config) -> None:
    """Run until SIGTERM/SIGINT. Jobs in flight stay in the spool and resume at the next start."""
    gateway = await Gateway.start(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with asyncio.TaskGroup() as group:
            workers = group.create_task(gateway.run_workers())
            await stop.wait()
            log.info("stopping")
            workers.cancel()
    finally:
        with contextlib.suppress(Exception):
            await gateway.close()
