"""Operating the running gateway: ``/healthz``, ``/metrics`` and applying a reloaded configuration."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vm2mail import logsetup, metrics, readiness
from vm2mail.config import Config
from vm2mail.errors import ConfigError, Vm2mailError
from vm2mail.jobs.spool import Spool
from vm2mail.mailstore.store import ImapStore
from vm2mail.pipeline.batch import PID_FILE

log = logging.getLogger(__name__)

KEY_CHECK_SECONDS = 60.0  # gpg runs once per key per check: cache the answer so probes stay cheap
SPOOL_STATES = ("new", "cur", "failed")  # done/ only grows (it is the audit trail): not counted
KeyCheck = Callable[[Config], list[tuple[str, str]]]  # vm2mail.app.key_problems


class Health:
    """The checks behind ``GET /healthz``: spool, IMAP, keys, the menu's METADATA, deliveries in retry."""

    def __init__(self, config: Callable[[], Config], spool: Spool, store: ImapStore, keys: KeyCheck) -> None:
        self.config = config
        self.spool = spool
        self.store = store
        self.keys = keys
        self._cached: tuple[float, Config, list[str]] | None = None
        self._metadata: tuple[float, Config, list[str]] | None = None
        self._lock = asyncio.Lock()

    async def key_failures(self) -> list[str]:
        """``key.path: problem`` per unusable key, recomputed at most every minute or after a reload."""
        async with self._lock:  # a burst of probes runs gpg once
            config = self.config()
            cached = self._cached
            if (
                cached is not None
                and cached[1] is config
                and time.monotonic() - cached[0] < KEY_CHECK_SECONDS
            ):
                return cached[2]
            try:
                found = [f"{path}: {problem}" for path, problem in await asyncio.to_thread(self.keys, config)]
            except Exception as exc:  # gpg missing or broken: that is the answer, not a crash
                found = [f"gpg: {exc}"]
            self._cached = (time.monotonic(), config, found)
            return found

    async def metadata_failures(self) -> list[str]:
        """``mailboxes.ID: problem`` per menu mailbox the server's METADATA cannot serve; cached a minute."""
        config = self.config()
        cached = self._metadata
        if cached is not None and cached[1] is config and time.monotonic() - cached[0] < KEY_CHECK_SECONDS:
            return cached[2]
        found = [
            f"{path}: {problem}" for path, problem in await readiness.metadata_problems(self.store, config)
        ]
        self._metadata = (time.monotonic(), config, found)
        return found

    async def report(self) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """(failures, degraded) by check name. Failures stop the whole instance (spool, IMAP, no mailbox
        deliverable) and make /healthz 503; degraded checks concern some mailboxes or jobs and stay 200.
        """

        async def spool() -> list[str]:
            ok = await asyncio.to_thread(self.spool.writable)
            return [] if ok else [f"{self.spool.root} is not writable"]

        async def imap() -> list[str]:
            try:
                await self.store.ping()
            except Vm2mailError as exc:
                return [str(exc)]
            except OSError as exc:
                return [f"{self.store.cfg.host}:{self.store.cfg.port}: {exc}"]
            return []

        spool_found, imap_found, keys_found, stuck = await asyncio.gather(
            spool(),
            imap(),
            self.key_failures(),
            asyncio.to_thread(readiness.stuck_deliveries, self.spool.root),
        )
        failures = {"spool": spool_found, "imap": imap_found}
        degraded: dict[str, list[str]] = {}
        if keys_found:
            # One mailbox's key is that mailbox's problem; no usable keyring, or no mailbox left that
            # can receive, means this instance delivers nothing.
            boxes = {b.id for b in self.config().mailboxes.values() if not b.is_group}
            affected = {p.split(".")[1] for p in keys_found if p.startswith("mailboxes.")}
            if any(p.startswith(("gpg:", "gpg.home:")) for p in keys_found) or (boxes and boxes <= affected):
                failures["keys"] = keys_found
            else:
                degraded["keys"] = keys_found
        if not imap_found:
            try:
                degraded["metadata"] = await self.metadata_failures()
            except (Vm2mailError, OSError) as exc:
                degraded["metadata"] = [f"cannot check: {exc}"]
        if stuck.count:
            degraded["retrying"] = [
                f"{stuck.count} deliveries waiting for a retry, the oldest acknowledged "
                f"{stuck.oldest_seconds / 60:.0f} min ago",
                *stuck.examples,
            ]
        return (
            {name: found for name, found in failures.items() if found},
            {name: found for name, found in degraded.items() if found},
        )

    async def failures(self) -> dict[str, list[str]]:
        """Failing checks by name; empty when the gateway can take and deliver calls."""
        return (await self.report())[0]

    async def handle(self, request: web.Request) -> web.Response:
        failures, degraded = await self.report()
        status = 503 if failures else 200
        state = "fail" if failures else "degraded" if degraded else "ok"
        if "application/json" in request.headers.get("Accept", ""):
            body = {"status": state, "failures": failures, "degraded": degraded}
            return web.json_response(body, status=status)
        if state == "ok":
            return web.Response(text="ok\n")
        lines = [
            f"{name}: {problem}"
            for found in (failures, degraded)
            for name, items in found.items()
            for problem in items
        ]
        if not failures:
            lines.insert(0, "degraded")
        return web.Response(status=status, text="\n".join(lines) + "\n")


def spool_depths(root: Path) -> dict[str, int]:
    """Job files per spool state, counted without reading them."""
    depths = {}
    for state in SPOOL_STATES:
        try:
            with os.scandir(root / state) as entries:
                depths[state] = sum(1 for entry in entries if entry.name.endswith(".json"))
        except OSError:
            depths[state] = 0
    return depths


async def handle_metrics(spool: Spool, request: web.Request) -> web.Response:
    """Prometheus text exposition of ``vm2mail.metrics.REGISTRY``; the spool gauge is read at scrape."""
    for state, depth in (await asyncio.to_thread(spool_depths, spool.root)).items():
        metrics.SPOOL_DEPTH.labels(state=state).set(depth)
    stuck = await asyncio.to_thread(readiness.stuck_deliveries, spool.root)
    metrics.RETRYING.set(stuck.count)
    metrics.RETRYING_OLDEST_SECONDS.set(stuck.oldest_seconds)
    body = await asyncio.to_thread(generate_latest, metrics.REGISTRY)
    # CONTENT_TYPE_LATEST carries version and charset parameters: set the header as a whole.
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_ops_routes(app: web.Application, health: Health, spool: Spool) -> None:
    async def metrics_handler(request: web.Request) -> web.Response:
        return await handle_metrics(spool, request)

    app.router.add_get("/healthz", health.handle)
    app.router.add_get("/metrics", metrics_handler)


# -- reload ----------------------------------------------------------------------------------------------


def keep_running(old: Config, new: Config) -> tuple[Config, list[str]]:
    """``new`` with the settings that only a restart can change put back to ``old``; one warning each.

    The HTTP listener, the spool, the worker count, the IMAP server and the SMTP listener are bound at
    start; everything read per call or per job (mailboxes, prompts, keys, notifications, menu) applies.
    """
    warnings: list[str] = []
    server = new.server
    for key, fields in (
        ("server.listen", ("listen_host", "listen_port")),
        ("server.spool_dir", ("spool_dir",)),
        ("server.workers", ("workers",)),
    ):
        before = tuple(getattr(old.server, f) for f in fields)
        after = tuple(getattr(new.server, f) for f in fields)
        if before != after:
            warnings.append(f"{key}: the change needs a restart (running with {_show(before)})")
            server = dataclasses.replace(server, **dict(zip(fields, before, strict=True)))
    imap = new.imap
    if new.imap != old.imap:
        warnings.append("imap: changes need a restart (pooled and watching connections use the old server)")
        imap = old.imap
    ingress = new.smtp_ingress
    if (old.smtp_ingress is None) != (new.smtp_ingress is None):
        warnings.append("smtp_ingress: adding or removing it needs a restart")
        ingress = old.smtp_ingress
    elif old.smtp_ingress is not None and new.smtp_ingress is not None:
        bound = ("listen_host", "listen_port", "hostname", "tls_cert", "tls_key", "max_message_bytes")
        changed = [f for f in bound if getattr(old.smtp_ingress, f) != getattr(new.smtp_ingress, f)]
        if changed:
            warnings.append(f"smtp_ingress: {', '.join(changed)} need a restart")
            ingress = dataclasses.replace(
                new.smtp_ingress, **{f: getattr(old.smtp_ingress, f) for f in changed}
            )
    old_t, new_t = old.twilio, new.twilio
    if (old_t.account_sid, old_t.auth_token, old_t.api_base_url) != (
        new_t.account_sid,
        new_t.auth_token,
        new_t.api_base_url,
    ):
        # Webhook signatures and recording downloads use the new values at once; the REST client
        # (recording deletion, SMS) was built at start.
        warnings.append(
            "twilio: REST calls (recording deletion, SMS) use the new credentials after a restart"
        )
    removed = sorted(set(old.mailboxes) - set(new.mailboxes))
    if removed:
        warnings.append(
            f"mailboxes {', '.join(removed)} removed: their calls in progress and spooled jobs can no "
            "longer be delivered (jobs go to failed/, where `vm2mail spool retry` finds them)"
        )
    return dataclasses.replace(new, server=server, imap=imap, smtp_ingress=ingress), warnings


def _show(values: tuple[object, ...]) -> str:
    return ":".join(str(v) for v in values)


async def reload_config(
    running: Config, path: Path, loader: Callable[[Path], Config]
) -> tuple[Config | None, list[str]]:
    """(the configuration to swap in, problems): a refused file gives (None, its problems)."""
    try:
        new = await asyncio.to_thread(loader, path)
    except ConfigError as exc:
        problems = exc.problems
    except Vm2mailError as exc:
        problems = [f"{path}: {exc}"]
    else:
        applied, warnings = keep_running(running, new)
        for warning in warnings:
            log.warning("reload %s: %s", path, warning)
        if applied.server.log_format != running.server.log_format:
            logsetup.set_format(applied.server.log_format)
        log.info("reloaded %s: %d mailboxes; new calls and jobs use it", path, len(applied.mailboxes))
        return applied, []
    for problem in problems:
        log.error("reload refused, the running configuration stays: %s", problem)
    return None, problems


def write_pid_file(spool_dir: Path) -> Path:
    """``<spool_dir>/vm2mail.pid`` for ``vm2mail reload`` (SIGHUP); written whole, then renamed."""
    path = spool_dir / PID_FILE
    tmp = spool_dir / f".vm2mail.pid.{os.getpid()}"
    tmp.write_text(f"{os.getpid()}\n")
    os.replace(tmp, path)
    return path


def remove_pid_file(path: Path) -> None:
    """Remove the pid file if it still names this process (a newer instance may have replaced it)."""
    try:
        if path.read_text().strip() == str(os.getpid()):
            path.unlink()
    except OSError:
        pass
