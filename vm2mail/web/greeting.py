"""The inbox's greeting routes: hear the current greeting, replace it with a recording or a file, remove it.

Greetings are stored where the phone menu stores them (vm2mail.mailstore.greetings: ``<folder>/Greetings``),
so the next call plays what the browser recorded, and a greeting recorded by phone plays here.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

from aiohttp import web

from vm2mail.errors import AudioError
from vm2mail.web.deps import WebDeps, authenticate
from vm2mail.web.http import WebError, api, ranged

log = logging.getLogger(__name__)

MAX_GREETING_BYTES = 20 * 1024 * 1024  # a few minutes of WAV; MediaRecorder's Opus is far smaller
_SUFFIXES = {  # what the browser says it sends -> a file name ffmpeg probes happily
    "audio/webm": ".webm",
    "audio/ogg": ".ogg",
    "audio/mpeg": ".mp3",
    "audio/mp4": ".m4a",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/wave": ".wav",
    "audio/flac": ".flac",
}


async def _body(request: web.Request) -> bytes:
    """The request body, refused past the limit while reading (the app's client_max_size is for forms)."""
    if request.content_length is not None and request.content_length > MAX_GREETING_BYTES:
        raise WebError(413, "too-large", "The greeting file is too large (20 MB at most).")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_GREETING_BYTES:
            raise WebError(413, "too-large", "The greeting file is too large (20 MB at most).")
        chunks.append(chunk)
    return b"".join(chunks)


def add_greeting_routes(app: web.Application, inbox: WebDeps) -> None:
    """``GET /inbox/api/greeting`` plays it, ``PUT`` replaces it (audio body), ``DELETE`` removes it."""

    @api
    async def current(request: web.Request) -> web.StreamResponse:
        caller = await authenticate(inbox, request)
        greeting = await inbox.greetings.current(caller.mailbox)
        mp3 = None
        if greeting is not None:
            mp3 = await inbox.playback.audio(caller.mailbox, greeting.folder, greeting.uid)
        if mp3 is None:
            raise WebError(404, "no-greeting", "No recorded greeting: callers hear the standard one.")
        return ranged(request, mp3, "audio/mpeg")

    @api
    async def replace(request: web.Request) -> web.StreamResponse:
        caller = await authenticate(inbox, request, change=True)
        kind = request.content_type.split(";")[0].strip().lower()
        if not kind.startswith("audio/"):
            raise WebError(415, "bad-audio", "Send the greeting as an audio file (Content-Type audio/*).")
        data = await _body(request)
        if not data:
            raise WebError(400, "bad-audio", "The greeting is empty.")
        with tempfile.TemporaryDirectory(prefix="vm2mail-web-greeting-") as tmp:
            path = Path(tmp) / f"upload{_SUFFIXES.get(kind, '.audio')}"
            await asyncio.to_thread(path.write_bytes, data)
            try:
                greeting = await inbox.greetings.save(caller.mailbox, path)
            except AudioError as exc:
                log.info("web: mailbox %s: greeting upload unusable: %s", caller.mailbox.id, exc)
                raise WebError(400, "bad-audio", "This file is not audio the gateway can read.") from exc
        log.info("web: mailbox %s: new greeting saved as UID %d", caller.mailbox.id, greeting.uid)
        return web.json_response({"ok": True})

    @api
    async def remove(request: web.Request) -> web.StreamResponse:
        caller = await authenticate(inbox, request, change=True)
        removed = await inbox.greetings.remove(caller.mailbox)
        return web.json_response({"ok": True, "removed": removed})

    app.router.add_get("/inbox/api/greeting", current)
    app.router.add_put("/inbox/api/greeting", replace)
    app.router.add_delete("/inbox/api/greeting", remove)
