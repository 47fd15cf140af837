"""Download a Twilio recording by its SID from the configured API host, with the account credentials."""

from __future__ import annotations

import base64
import logging
import re
from pathlib import Path

import aiohttp

from vm2mail.config.model import TwilioConfig
from vm2mail.errors import TelephonyError

log = logging.getLogger(__name__)

MAX_RECORDING_BYTES = 1 << 30  # 1 GiB: about 18 hours of 8 kHz 16-bit WAV; anything larger is not a voicemail
CHUNK = 1 << 16


RECORDING_SID = re.compile(r"RE[0-9a-fA-F]{32}")


def recording_url(twilio: TwilioConfig, recording_sid: str) -> str:
    """The recording's resource URL, built from ``api_base_url``, the account and a validated SID.

    The callback's ``RecordingUrl`` is never fetched: the signature only proves Twilio sent it, and a
    URL checked with one parser but fetched with another (aiohttp's yarl) is a classic SSRF gap. A
    SID of 34 known characters cannot leave the path, so credentials only ever go to api_base_url.
    https://www.twilio.com/docs/voice/api/recording#fetch-a-recording-resource
    """
    if not RECORDING_SID.fullmatch(recording_sid):
        raise TelephonyError(f"{recording_sid[:40]!r} is not a Twilio RecordingSid", temporary=False)
    return f"{twilio.api_base_url}/2010-04-01/Accounts/{twilio.account_sid}/Recordings/{recording_sid}"


def media_url(twilio: TwilioConfig, recording_sid: str) -> str:
    # Twilio serves the recording as WAV by default; ask for it explicitly (FIELD-NOTES: read the header).
    return recording_url(twilio, recording_sid) + ".wav"


async def fetch_recording(
    session: aiohttp.ClientSession, twilio: TwilioConfig, recording_sid: str, dst: Path
) -> int:
    """Stream recording ``recording_sid`` into ``dst``; return its size. Raises TelephonyError."""
    url = media_url(twilio, recording_sid)
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
