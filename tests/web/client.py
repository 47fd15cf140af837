"""A plain HTTP client for the inbox API over a real socket, holding the session cookie like a browser."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp

from vm2mail.web.session import COOKIE


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class InboxClient:
    """``await client.login(user, password)``, then ``get``/``post`` with the cookie and CSRF token."""

    base: str
    cookie: str | None = None
    csrf: str | None = None
    session: dict[str, Any] = field(default_factory=dict)

    async def request(self, method: str, path: str, *, csrf: bool = True, **kwargs: Any) -> Reply:
        headers = dict(kwargs.pop("headers", {}))
        if self.cookie:
            headers["Cookie"] = f"{COOKIE}={self.cookie}"
        if csrf and self.csrf and method != "GET":
            headers["X-CSRF-Token"] = self.csrf
        # DummyCookieJar: the cookie is Secure, and we send it ourselves exactly as the browser would.
        async with (
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
            http.request(method, self.base + path, headers=headers, **kwargs) as response,
        ):
            body = await response.read()
            reply = Reply(response.status, dict(response.headers), body)
            if COOKIE in response.cookies:
                self.cookie = response.cookies[COOKIE].value or None
                self.set_cookie = response.headers.get("Set-Cookie", "")
            return reply

    async def login(self, user: str, password: str) -> Reply:
        reply = await self.request("POST", "/inbox/api/login", json={"login": user, "password": password})
        if reply.status == 200:
            self.session = reply.json()
            self.csrf = self.session["csrf"]
        return reply

    async def get(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("POST", path, **kwargs)
