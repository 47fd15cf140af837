"""Drive one call step by step, as Twilio does: signed form POSTs to the gateway, TwiML back."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

import aiohttp
from yarl import URL

from tests.fixtures.config import AUTH_TOKEN
from vm2mail.config import Config
from vm2mail.devstack.fake_twilio import new_sid
from vm2mail.telephony.signature import SIGNATURE_HEADER, sign


@dataclass
class Step:
    status: int
    body: str

    @property
    def twiml(self) -> ET.Element:
        return ET.fromstring(self.body)  # noqa: S314 - written by the gateway under test

    def find(self, tag: str) -> ET.Element:
        found = self.twiml.find(f".//{tag}")
        assert found is not None, f"no <{tag}> in {self.body}"
        return found


async def post(port: int, config: Config, url: str, params: dict[str, str]) -> Step:
    """POST ``params`` to the public ``url`` (absolute or a path), signed with the test auth token."""
    public = config.server.public_url
    url = url if url.startswith("http") else public + url
    assert url.startswith(public + "/"), url
    target = f"http://127.0.0.1:{port}{url[len(public) :]}"
    headers = {SIGNATURE_HEADER: sign(AUTH_TOKEN, url, params)}
    async with (
        aiohttp.ClientSession() as session,
        session.post(URL(target, encoded=True), data=params, headers=headers) as response,
    ):
        return Step(response.status, await response.text())


def call_params(config: Config, call_sid: str, called: str, caller: str = "+4930123456") -> dict[str, str]:
    return {
        "AccountSid": config.twilio.account_sid,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": caller,
        "To": called,
        "Caller": caller,
        "Called": called,
    }


def new_call_sid() -> str:
    return new_sid("CA")
