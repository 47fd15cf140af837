"""X-Twilio-Signature checks and signing, always over the configured public URL and every parameter."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from twilio.request_validator import RequestValidator

from vm2mail.errors import SignatureError

log = logging.getLogger(__name__)

# https://www.twilio.com/docs/usage/security#validating-requests
SIGNATURE_HEADER = "X-Twilio-Signature"

# aiohttp's MultiDictProxy is a Mapping; RequestValidator reads repeated keys with getall().
Params = Mapping[str, str]


def webhook_url(public_url: str, path_qs: str) -> str:
    """The URL Twilio requested, as Twilio saw it: the public URL, not our Host header.

    Behind a TLS-terminating proxy the request reaches us as http://internal:8080/..., but Twilio
    signed https://public.example/...; only the configured public URL reproduces the signature.
    """
    return public_url.rstrip("/") + path_qs


def sign(auth_token: str, url: str, params: Params) -> str:
    """The X-Twilio-Signature Twilio would send for a POST of ``params`` to ``url`` (HMAC-SHA1)."""
    return str(RequestValidator(auth_token).compute_signature(url, params))


def require_signature(auth_token: str, url: str, signature: str | None, *, call_sid: str = "") -> None:
    """Raise SignatureError when no request could pass ``verify``: no signature, or no token to check it.

    Checked before the body is parsed, so an unsigned request costs no parsing and cannot reach it.
    """
    if not signature:
        log.warning("webhook %s without %s refused (call %s)", url, SIGNATURE_HEADER, call_sid or "?")
        raise SignatureError("missing signature")
    if not auth_token:
        log.error("no Twilio auth token configured: refusing webhook %s", url)
        raise SignatureError("no auth token configured")


def verify(auth_token: str, url: str, params: Params, signature: str | None, *, call_sid: str = "") -> None:
    """Raise SignatureError unless ``signature`` is Twilio's for ``url`` and all of ``params``.

    Every received parameter is signed over, because Twilio may add new ones at any time
    (https://www.twilio.com/docs/usage/webhooks/webhooks-security); the validator accepts the URL
    with and without an explicit default port, as Twilio's own signing varies there.
    """
    require_signature(auth_token, url, signature, call_sid=call_sid)
    assert signature is not None
    if not RequestValidator(auth_token).validate(url, params, signature):
        # Log the URL and call only: never the token, and not the signature (a replayable credential).
        log.warning("webhook %s with invalid signature refused (call %s)", url, call_sid or "?")
        raise SignatureError("invalid signature")
