"""``/outage``: the authenticated HTTP switch for monitoring systems to turn company outage mode on or off.

``POST /outage`` with ``Authorization: Bearer <outage.monitor_token>`` and a form or JSON body
``state=on|off`` (``until=90m`` or a date-time optional) switches it; ``GET /outage`` reports it. The
token is compared in constant time (hmac.compare_digest); every attempt leaves an audit log line with
the client address and the outcome, never the token. Without ``monitor_token`` the endpoint is off (404).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from vm2mail.config.model import Config
from vm2mail.errors import Vm2mailError
from vm2mail.routing import control
from vm2mail.routing.decide import Switch
from vm2mail.routing.switches import Switches
from vm2mail.twilioapi.rest import TwilioRest

log = logging.getLogger(__name__)
audit = logging.getLogger("vm2mail.audit")

PATH = "/outage"
MAX_BODY = 4096


def _json(status: int, data: dict[str, Any]) -> web.Response:
    return web.json_response(data, status=status, headers={"Cache-Control": "no-store"})


def _describe(switch: Switch, now: float) -> dict[str, Any]:
    until = datetime.fromtimestamp(switch.until, UTC).isoformat() if switch.until else None
    return {"outage": "on" if switch.active(now) else "off", "until": until, "by": switch.by or None}


def add_monitor_routes(
    app: web.Application, config: Callable[[], Config], switches: Switches, rest: TwilioRest
) -> None:
    """Register ``GET``/``POST /outage``."""

    def authorized(request: web.Request, cfg: Config) -> bool:
        token = cfg.outage.monitor_token or ""
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        # Compare bytes of any length in constant time; an empty configured token never matches.
        return (
            bool(token)
            and scheme.lower() == "bearer"
            and hmac.compare_digest(given.strip().encode(), token.encode())
        )

    async def guard(request: web.Request) -> web.Response | None:
        cfg = config()
        if not cfg.outage.monitor_token:
            return _json(404, {"error": "the outage endpoint is not enabled (outage.monitor_token)"})
        if not authorized(request, cfg):
            audit.warning(
                "audit: outage endpoint %s from %s refused: wrong or missing token",
                request.method,
                request.remote,
            )
            return web.json_response(
                {"error": "wrong or missing bearer token"}, status=401, headers={"WWW-Authenticate": "Bearer"}
            )
        return None

    async def status(request: web.Request) -> web.Response:
        if (refused := await guard(request)) is not None:
            return refused
        try:
            switch = await switches.outage()
        except Vm2mailError as exc:
            return _json(503, {"error": f"mail store unavailable: {exc}"})
        return _json(200, _describe(switch, datetime.now(UTC).timestamp()))

    async def switch(request: web.Request) -> web.Response:
        if (refused := await guard(request)) is not None:
            return refused
        cfg = config()
        if (request.content_length or 0) > MAX_BODY:
            return _json(413, {"error": "body too large"})
        try:
            if request.content_type == "application/json":
                data = json.loads(await request.text() or "{}")
                if not isinstance(data, dict):
                    raise ValueError("the JSON body must be an object")
            else:
                data = dict(await request.post())
            state = str(data.get("state", "")).lower()
            if state not in ("on", "off"):
                raise ValueError("state must be on or off")
            until_text = data.get("until")
            # A date-time without an offset is read as UTC here: monitors rarely know the office's zone.
            until = (
                control.parse_until(str(until_text), ZoneInfo("UTC"))
                if until_text and state == "on"
                else None
            )
        except (ValueError, control.SwitchError) as exc:
            audit.warning("audit: outage endpoint POST from %s refused: %s", request.remote, exc)
            return _json(400, {"error": str(exc)})
        try:
            new, changed = await control.set_outage(
                cfg, switches, rest, on=state == "on", until=until, by=f"http {request.remote}"
            )
        except Vm2mailError as exc:
            log.error("outage endpoint: switch not stored: %s", exc)
            return _json(503, {"error": f"mail store unavailable, nothing changed: {exc}"})
        return _json(200, {**_describe(new, datetime.now(UTC).timestamp()), "changed": changed})

    app.router.add_get(PATH, status)
    app.router.add_post(PATH, switch)
