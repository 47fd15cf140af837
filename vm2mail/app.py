"""Composition root: one asyncio process runs the webhooks, the spool workers and the IMAP store."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from vm2mail import longlived, monitor, ops
from vm2mail.config import Config, load_config
from vm2mail.config.model import Mailbox
from vm2mail.crypto.pgp import Encryptor
from vm2mail.errors import Vm2mailError
from vm2mail.jobs.jobs import Job
from vm2mail.jobs.spool import Spool
from vm2mail.mailstore.awaygreeting import AwayGreetings
from vm2mail.mailstore.greetings import Greetings
from vm2mail.mailstore.metadata import Metadata
from vm2mail.mailstore.store import ImapStore
from vm2mail.mailstore.voicemails import Voicemails
from vm2mail.menu.call import MenuDeps
from vm2mail.menu.routes import add_menu_routes, greeting_url
from vm2mail.notify import Notifier
from vm2mail.pipeline.prune import run_pruner
from vm2mail.pipeline.worker import DeliveredHook, Pipeline
from vm2mail.playback import Playback
from vm2mail.replies import ReplySender
from vm2mail.routing.background import OutageExpiry, SharedBreakers
from vm2mail.routing.breaker import Breakers
from vm2mail.routing.switches import Switches
from vm2mail.smtp.server import SmtpIngress
from vm2mail.telephony.media import add_media_routes
from vm2mail.telephony.webhooks import TelephonyDeps, add_routes
from vm2mail.twilioapi.rest import TwilioRest
from vm2mail.watcher import Watcher, WatchEvent
from vm2mail.web import WebDeps, add_web_routes
from vm2mail.web.auth import WebLogins
from vm2mail.web.folder import InboxFolders
from vm2mail.web.live import LiveHub
from vm2mail.web.session import Generations

log = logging.getLogger(__name__)

# Shares of lifecycle.STOP_SECONDS: workers first (they settle or give back their jobs), then the
# listeners and IMAP connections; the rest is the margin for leftovers and the process exit.
WORKERS_STOP_SECONDS = 2.0
CLOSE_SECONDS = 1.5


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


def add_delivered_hook(pipeline: Pipeline, hook: DeliveredHook) -> None:
    """Chain ``hook`` after the Pipeline's existing ``on_delivered`` hook(s) (notifier, watcher, ...)."""
    previous = pipeline.on_delivered
    if previous is None:
        pipeline.on_delivered = hook
        return

    async def fan_out(job: Job, target: Mailbox, uid: int) -> None:
        await previous(job, target, uid)
        await hook(job, target, uid)

    pipeline.on_delivered = fan_out


def _nudge_notifier(notifier: Notifier) -> Callable[[WatchEvent], Awaitable[None]]:
    """Watcher events make the notifier rescan that folder (a voicemail heard stops its reminders)."""

    async def on_event(event: WatchEvent) -> None:
        notifier.nudge(event.mailbox.id)

    return on_event


def menu_deps(gateway: Gateway, rest: TwilioRest) -> MenuDeps:
    """The phone menu's services over the gateway's IMAP store (issue 3); alerts go to the notifier."""
    voicemails = Voicemails(gateway.store)

    async def alert(subject: str, text: str) -> None:
        if gateway.notifier is not None:
            gateway.notifier.alert_soon(subject, text)

    metadata = Metadata(gateway.store)
    return MenuDeps(
        config=gateway.current,
        voicemails=voicemails,
        metadata=metadata,
        playback=Playback(gateway.current, voicemails),
        greetings=Greetings(gateway.store, voicemails),
        http=gateway.http,
        delete_recording=rest.delete_recording,
        alert=alert,
        switches=Switches(gateway.current, metadata),
        away_greetings=AwayGreetings(gateway.store, voicemails),
    )


def web_deps(gateway: Gateway, menu: MenuDeps, rest: TwilioRest) -> WebDeps:
    """The web inbox (issue 12) over the menu's folder reader, lockout store and playback."""
    return WebDeps(
        config=gateway.current,
        folders=InboxFolders(menu.voicemails),
        generations=Generations(gateway.current, menu.metadata),
        logins=WebLogins(gateway.current, menu.login_service()),
        playback=menu.playback,
        greetings=menu.greetings,
        hub=LiveHub(),
        connect=rest.connect,
        replies=ReplySender(gateway.current, rest.send_sms, Path(gateway.spool.root) / "replies"),
    )


def load(path: Path) -> Config:
    """The configuration with every pinned key checked: an unusable key is an error (check-config)."""
    return load_config(path, check_keys=key_problems)


def load_for_service(path: Path) -> Config:
    """The configuration for ``serve`` and reload: an unusable key must not stop the gateway.

    Voicemails for that mailbox wait in the spool (the worker retries and alerts the admin) and
    /healthz reports the key, so the problem is logged here instead of refusing to start.
    """
    config = load_config(path)
    for key_path, problem in key_problems(config):
        log.warning(
            "%s: %s: %s; its voicemails wait in the spool until this is fixed", path, key_path, problem
        )
    return config


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
    smtp: SmtpIngress | None = None  # the SMTP ingress, when smtp_ingress is configured
    smtp_port: int = 0  # its bound port (smtp_ingress.listen may say port 0 in tests)
    notifier: Notifier | None = None  # notifications, reminders and admin alerts (alert_admin)
    watcher: Watcher | None = None  # IDLE on every mailbox folder: counts, group sync, retention (issue 4)
    outage_expiry: OutageExpiry | None = None  # announces an outage that ended by its end time
    shared_breakers: SharedBreakers | None = None  # PBX breakers shared with other instances (METADATA)

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
                call_taken=rest.call_taken,
            ),
        )
        gateway.notifier = Notifier(gateway.current, store, rest)
        gateway.pipeline.alert_admin = gateway.notifier.alert_admin
        add_delivered_hook(gateway.pipeline, gateway.notifier.on_delivered)
        gateway.watcher = watcher = Watcher(gateway.current, store)
        add_delivered_hook(gateway.pipeline, watcher.on_delivered)
        watcher.subscribe(_nudge_notifier(gateway.notifier))
        menu = menu_deps(gateway, rest)
        assert menu.switches is not None
        notifier = gateway.notifier
        breakers = Breakers(lambda: gateway.config.routing, alert=notifier.alert_soon)
        gateway.shared_breakers = SharedBreakers(gateway.current, menu.metadata, breakers)
        add_routes(
            app,
            TelephonyDeps(
                config=gateway.current,
                spool=spool,
                greeting_url=greeting_url(menu),
                away_greeting_url=greeting_url(menu, away=True),
                mailbox_full=watcher.mailbox_full,
                switches=menu.switches,
                breakers=breakers,
            ),
        )
        monitor.add_monitor_routes(app, gateway.current, menu.switches, rest)
        gateway.outage_expiry = OutageExpiry(gateway.current, menu.switches, rest)
        add_menu_routes(app, menu)
        add_media_routes(app, menu.playback)
        inbox = web_deps(gateway, menu, rest)
        watcher.subscribe(inbox.hub.on_event)
        add_web_routes(app, inbox)
        ops.add_ops_routes(app, ops.Health(gateway.current, spool, store, key_problems), spool)
        await gateway.runner.setup()
        host = config.server.listen_host
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        wanted = config.server.listen_port if port is None else port
        try:
            sock.bind((host, wanted))
        except OSError as exc:
            sock.close()
            await gateway.close()
            # One line for the admin (vm2mail: ...), not a traceback: usually another instance runs.
            raise Vm2mailError(f"server.listen: cannot listen on {host}:{wanted}: {exc.strerror}") from exc
        await web.SockSite(gateway.runner, sock).start()
        gateway.port = sock.getsockname()[1]
        log.info(
            "listening on %s:%d, public URL %s, spool %s",
            config.server.listen_host,
            gateway.port,
            config.server.public_url,
            config.server.spool_dir,
        )
        if config.smtp_ingress is not None:
            try:
                gateway.smtp = SmtpIngress(gateway.current, spool, rest.send_sms)
                gateway.smtp_port = await gateway.smtp.start()
            except OSError as exc:
                await gateway.close()  # the HTTP listener is already up
                where = f"{config.smtp_ingress.listen_host}:{config.smtp_ingress.listen_port}"
                raise Vm2mailError(f"smtp_ingress.listen: cannot listen on {where}: {exc.strerror}") from exc
            except BaseException:
                await gateway.close()  # the HTTP listener is already up
                raise
        return gateway

    async def reload(self, path: Path | None = None) -> list[str]:
        """Re-read the YAML (SIGHUP): [] when new calls and jobs now use it, else why it was refused."""
        new, problems = await ops.reload_config(self.config, path or self.config.source, load_for_service)
        if new is not None:
            self.config = new  # every component reads it through self.current at each call or job
        return problems

    async def run_workers(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.pipeline.run(self.config.server.workers), name="pipeline")
            group.create_task(run_pruner(self.current), name="prune")
            if self.notifier is not None:
                group.create_task(self.notifier.run(), name="notifier")
            if self.watcher is not None:
                group.create_task(self.watcher.run(), name="watcher")
            # Both idle while the configuration gives them nothing to do (a reload may change that).
            if self.outage_expiry is not None:
                group.create_task(self.outage_expiry.run(), name="outage-expiry")
            if self.shared_breakers is not None:
                group.create_task(self.shared_breakers.run(), name="shared-breakers")

    async def close(self) -> None:
        if self.smtp is not None:
            await self.smtp.close()
        await self.runner.cleanup()
        if self.notifier is not None:
            await self.notifier.close()
        if self.watcher is not None:
            await self.watcher.close()
        if self.shared_breakers is not None:
            await self.shared_breakers.close()
        await self.store.close()
        await self.http.close()


async def serve(config: Config) -> None:
    """Run until SIGTERM/SIGINT; SIGHUP reloads the YAML. Jobs in flight stay in the spool and resume."""
    gateway = await Gateway.start(config)
    longlived.settle_start()  # the ~60,000 objects of the loaded code: out of every later full GC pass
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: list[asyncio.Task[None]] = []

    def hangup() -> None:
        # One reload at a time, in signal order: each waits for the one before it.
        previous = reloads[-1] if reloads else None

        async def after_previous() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            log.info("SIGHUP: reloading %s", gateway.config.source)
            try:
                await gateway.reload()  # logs what it applied or why it refused
            except Exception:
                log.exception("reload failed; the running configuration stays")

        reloads[:] = [loop.create_task(after_previous(), name="reload")]

    loop.add_signal_handler(signal.SIGHUP, hangup)
    # Written once SIGHUP is handled: `vm2mail reload` signals the pid it names.
    pid_file = ops.write_pid_file(config.server.spool_dir)
    workers = asyncio.create_task(gateway.run_workers(), name="workers")
    stopping = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        await asyncio.wait({workers, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        log.info("stopping")
        stopping.cancel()
        loop.remove_signal_handler(signal.SIGHUP)
        ops.remove_pid_file(pid_file)
        for task in reloads:
            task.cancel()
        await stop_gateway(gateway, workers)
    crash = workers.exception() if workers.done() and not workers.cancelled() else None
    if crash is not None:
        raise crash  # a worker group that crashed ends serve, as before


async def stop_gateway(gateway: Gateway, workers: asyncio.Task[None]) -> None:
    """Stop within lifecycle.STOP_SECONDS in any state (IMAP hung, reconnecting, mid-delivery).

    Each phase has a deadline rather than trusting every task to honour its cancellation at once;
    whatever still runs after them is left to lifecycle.run_service, which exits regardless. Claimed
    jobs go back to new/ before the IMAP connections are dropped, so they are never left in cur/.
    """
    workers.cancel()
    await asyncio.wait({workers}, timeout=WORKERS_STOP_SECONDS)
    if not workers.done():
        log.error("workers still busy %.0fs after SIGTERM; stopping without them", WORKERS_STOP_SECONDS)
    try:
        released = await asyncio.to_thread(gateway.spool.release_claimed_sync)
    except OSError as exc:  # the next start requeues cur/ anyway (Spool.open_sync)
        log.error("could not give claimed jobs back to the spool: %s", exc)
    else:
        for job_id in released:
            log.info("job %s given back to the spool (new/) for the next start", job_id)
    try:
        await asyncio.wait_for(gateway.close(), CLOSE_SECONDS)
    except TimeoutError:
        log.error("closing connections took over %.0fs; exiting without waiting", CLOSE_SECONDS)
    except Exception:
        log.exception("error while closing")
