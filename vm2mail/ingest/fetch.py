"""Download a Twilio recording to a file, only from the configured API host, with account credentials."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from vm2mail.config.model import TwilioConfig
from vm2mail.errors import TelephonyError

log = logging.getLogger(__name__)

MAX_RECORDING_BYTES = 1 << 30  # 1 GiB: about 18 hours of 8 kHz 16-bit WAV; anything larger is not a voicemail
CHUNK = 1 << 16


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def media_url(twilio: TwilioConfig, recording_url: str) -> str:
    """The WAV URL for a callback's ``RecordingUrl``, refused unless it points at ``api_base_url``.

    The callback is signed, but the signature only proves Twilio sent it; pinning the host means a
    leaked auth token cannot turn the gateway into a fetcher of arbitrary URLs with Twilio credentials.
    """
    if _origin(recording_url) != _origin(twilio.api_base_url):
        raise TelephonyError(
            f"recording URL host {urlsplit(recording_url).netloc!r} is not the configured Twilio API host "
            f"{urlsplit(twilio.api_base_url).netloc!r}; refusing to fetch",
            temporary=False,
        )
    path = urlsplit(recording_url).path
    if not path.rsplit("/", 1)[-1].startswith("RE"):
        raise TelephonyError(f"{recording_url!r} is not a recording URL", temporary=False)
    # Twilio serves the recording as WAV by default; ask for it explicitly (FIELD-NOTES: read the header).
    return recording_url if path.endswith((".wav", ".mp3")) else f"{recording_url}.wav"


async def fetch_recording(
    session: aiohttp.ClientSession, twilio: TwilioConfig, recording_url: str, dst: Path
) -> int:
    """Stream the recording into ``dst``; return its size. Raises TelephonyError (temporary or not)."""
    url = media_url(twilio, recording_url)
    # HTTP Basic (RFC 7617) built by hand: aiohttp deprecates BasicAuth and the auth= parameter.
    token = base64.b64encode(f"{twilio.account_sid}:{twilio.auth_token}".encode()).decode("ascii")
    headers = {"Authorization": f"Basic {token}"}
    try:
        # Redirects are followed (Twilio may hand media off to its CDN); aiohttp drops the Authorization
        # header when a redirect leaves the origin, so credentials only ever go to api_base_url.
        # sock_read: the session's total (300 s) alone lets a peer that stops sending hold a worker for
        # minutes; a recording stream silent for twilio.timeout_seconds fails this attempt instead.
        timeout = aiohttp.ClientTimeout(total=300, sock_connect=10, sock_read=twilio.timeout_seconds)
        async with session.get(url, headers=headers, max_redirects=3, timeout=timeout) as response:
            if response.status in (404, 410):
                raise TelephonyError(f"recording {url} is gone (HTTP {response.status})", temporary=False)
            if response.status in (401, 403):
                # Wrong credentials: fixable by the admin (reload), so keep the job and retry later.
                raise TelephonyError(
                    f"Twilio refused our credentials for {url} (HTTP {response.status}); "
                    "check twilio.account_sid and auth_token",
                    temporary=True,
                )
            if response.status != 200:
                raise TelephonyError(f"fetching {url} gave HTTP {response.status}", temporary=True)
            size = 0
            with dst.open("wb") as out:
                async for chunk in response.content.iter_chunked(CHUNK):
                    size += len(chunk)
                    if size > MAX_RECORDING_BYTES:
                        raise TelephonyError(
                            f"recording {url} exceeds {MAX_RECORDING_BYTES} bytes", temporary=False
                        )
                    out.write(chunk)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise TelephonyError(f"fetching {url} failed: {exc or type(exc).__name__}", temporary=True) from exc
    log.debug("fetched %s (%d bytes)", url, size)
    return size
