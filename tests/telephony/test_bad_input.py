"""Hostile or broken webhook requests get 403 or 400, never a 500 or a traceback in the log."""

from __future__ import annotations

import asyncio
import logging
import random
import string
from pathlib import Path
from urllib.parse import quote_plus

import pytest
from yarl import URL

from tests.fixtures.twilio import (
    AUTH_TOKEN,
    PUBLIC_URL,
    call_params,
    make_telephony_config,
    run,
    running_gateway,
)
from tests.telephony.test_signature import RECORDING, RECORDING_PATH
from vm2mail import logsetup
from vm2mail.telephony.signature import SIGNATURE_HEADER, sign

PATHS = ("/twilio/voice", "/twilio/dial-done", "/twilio/record-done", RECORDING_PATH, "/twilio/call-status")


def form_body(params: dict[str, str], encoding: str = "utf-8") -> bytes:
    return "&".join(
        f"{quote_plus(k, encoding=encoding)}={quote_plus(v, encoding=encoding)}" for k, v in params.items()
    ).encode()


def test_unsigned_request_is_403_before_its_body_is_parsed(tmp_path: Path) -> None:
    """An unknown charset would make parsing fail: unsigned, the body is never looked at."""

    async def scenario() -> None:
        async with running_gateway(make_telephony_config(tmp_path)) as gw:
            for charset in ("x-no-such-charset", "utf-8"):
                async with gw.session.post(
                    URL(gw.url + RECORDING_PATH, encoded=True),
                    data=form_body(RECORDING),
                    headers={"Content-Type": f"application/x-www-form-urlencoded; charset={charset}"},
                ) as response:
                    assert response.status == 403, charset
            assert gw.jobs() == []

    run(scenario())


def test_signed_request_with_unknown_or_wrong_charset_is_400(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with running_gateway(make_telephony_config(tmp_path)) as gw:
            signature = sign(AUTH_TOKEN, PUBLIC_URL + RECORDING_PATH, RECORDING)
            for content_type, body in (
                ("application/x-www-form-urlencoded; charset=x-no-such-charset", form_body(RECORDING)),
                (
                    "application/x-www-form-urlencoded; charset=utf-8",
                    form_body(RECORDING) + b"&Extra=\xff\xfe",
                ),
                (
                    "application/x-www-form-urlencoded; charset=ascii",
                    form_body(RECORDING) + b"&Name=J\xc3\xbcrgen",
                ),
            ):
                async with gw.session.post(
                    URL(gw.url + RECORDING_PATH, encoded=True),
                    data=body,
                    headers={"Content-Type": content_type, SIGNATURE_HEADER: signature},
                ) as response:
                    text = await response.text()
                    assert response.status == 400, (content_type, text)
                    assert "cannot decode the form" in text
            assert gw.jobs() == []
            # The same form, well encoded, is accepted: the 400s were about the encoding.
            assert (await gw.post(RECORDING_PATH, RECORDING))[0] == 204

    with caplog.at_level(logging.INFO):
        run(scenario())
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def random_text(rng: random.Random, size: int) -> str:
    alphabet = string.printable + "äöüß€😀\u0000\u202e\ud7ff"
    return "".join(rng.choice(alphabet) for _ in range(size))


def fuzz_request(rng: random.Random) -> tuple[str, bytes, dict[str, str]]:
    path = rng.choice(PATHS)
    base = dict(RECORDING) if path == RECORDING_PATH else call_params("+4930555201")
    params = dict(base)
    for _ in range(rng.randint(0, 4)):  # mutate, drop or add fields
        choice = rng.random()
        if choice < 0.4 and params:
            params[rng.choice(list(params))] = random_text(rng, rng.choice((0, 1, 40, 3000)))
        elif choice < 0.6 and params:
            params.pop(rng.choice(list(params)))
        else:
            params[random_text(rng, rng.randint(1, 20))] = random_text(rng, rng.randint(0, 200))
    if rng.random() < 0.2:  # Twilio's parameters with nonsense where a status or a number is expected
        params.update(
            {
                "RecordingStatus": rng.choice(("completed", "absent", "failed", "", "x")),
                "RecordingDuration": rng.choice(("-1", "1e9", "nan", "", "7")),
                "DialCallStatus": rng.choice(("completed", "busy", "no-answer", "", "?")),
                "Digits": rng.choice(("hangup", "", "1" * 500, "#")),
                "RecordingStartTime": rng.choice(("", "yesterday", "Mon, 99 Nov 2026 10:00:00 +0000")),
            }
        )
    charset = rng.choice(("utf-8", "latin-1", "utf-16", "x-unknown", "ascii", None))
    content_type = rng.choice(
        (
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded",
            "application/json",
            "multipart/form-data; boundary=xyz",
            "text/plain",
            "",
        )
    )
    encoding = charset if charset in ("utf-8", "latin-1", "utf-16", "ascii") else "utf-8"
    try:
        body = form_body(params, encoding)
    except UnicodeEncodeError:
        body = form_body(params)
    if rng.random() < 0.1:
        body = rng.randbytes(rng.randint(0, 2000))
    headers = {"Content-Type": content_type + (f"; charset={charset}" if charset and content_type else "")}
    if rng.random() < 0.7:  # signed: the signature covers the parameters as the client meant them
        headers[SIGNATURE_HEADER] = sign(AUTH_TOKEN, PUBLIC_URL + path, params)
    elif rng.random() < 0.5:
        headers[SIGNATURE_HEADER] = "".join(rng.choice(string.ascii_letters + "+/=") for _ in range(28))
    return path, body, headers


def test_fuzzed_webhooks_never_get_a_500_or_log_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(15)
    statuses: dict[int, int] = {}

    async def scenario() -> None:
        async with running_gateway(make_telephony_config(tmp_path)) as gw:
            for _ in range(300):
                path, body, headers = fuzz_request(rng)
                headers = {k: v.encode("utf-8", "replace").decode("latin-1") for k, v in headers.items()}
                async with gw.session.post(
                    URL(gw.url + path, encoded=True), data=body, headers=headers
                ) as response:
                    await response.read()
                    assert response.status < 500, (path, headers, body[:200], await response.text())
                    statuses[response.status] = statuses.get(response.status, 0) + 1

    with caplog.at_level(logging.INFO):
        run(scenario())
    # Errors may be logged (a signed callback for an unknown mailbox is worth an admin's look), but
    # nothing escapes as a traceback.
    assert not [r for r in caplog.records if r.exc_info], [
        r.getMessage() for r in caplog.records if r.exc_info
    ]
    # The fuzzing reached past the guard as well as being refused by it.
    assert statuses.get(403, 0) > 0 and statuses.get(400, 0) > 0
    assert sum(n for status, n in statuses.items() if status < 300) > 0, statuses


def test_malformed_http_is_answered_400_and_logged_in_one_info_line(tmp_path: Path) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logsetup.setup("text")
    root.addHandler(Keep())

    async def scenario() -> bytes:
        async with running_gateway(make_telephony_config(tmp_path)) as gw:
            host, port = URL(gw.url).host, URL(gw.url).port
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"POST /twilio/voice HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n")
            await writer.drain()
            answer = await reader.read(200)
            writer.close()
            return answer

    try:
        answer = run(scenario())
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    assert answer.split(b" ")[1] == b"400", answer
    assert not [r for r in records if r.exc_info or r.levelno >= logging.ERROR]
    assert any(
        "malformed HTTP request refused" in r.getMessage() and r.levelno == logging.INFO for r in records
    )
