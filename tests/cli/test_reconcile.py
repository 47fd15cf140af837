"""``vm2mail reconcile``: recordings Twilio kept while the gateway was down land once, however often."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from tests.cli.conftest import acli, cli
from tests.e2e.harness import Stack, gateway_up, parse, sample, twilio_up
from tests.e2e.test_voicemail import messages
from tests.fixtures.twilio import make_wav


def test_reconcile_delivers_missing_recordings_and_twice_changes_nothing(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {}, "202": {}})
    number_201 = s.config.mailboxes["201"].numbers[0]
    number_202 = s.config.mailboxes["202"].numbers[0]
    config = str(s.config.source)
    started = datetime(2026, 11, 23, 8, 0, 5, tzinfo=UTC)

    async def scenario() -> tuple[str, str, list[str]]:
        async with twilio_up(s) as fake:
            # A: delivered normally while the gateway was up ...
            async with gateway_up(s.config) as gateway:
                trace = await s.call(gateway)
                assert trace.recording is not None
                assert await s.wait_job(trace.recording.sid) == "done"
            a = trace.recording.sid
            # ... but its delete failed at Twilio and another instance's spool holds the job: only the
            # Message-ID in the folder says it was delivered.
            fake.add_recording(sample(), call_sid=trace.call_sid, sid=a)
            fake.add_call(trace.call_sid, to=number_201, caller="+4930123456")
            s.job_file("done", a).unlink()
            # B, C: the gateway was down when Twilio called back; D: a number no mailbox has.
            fake.add_call("CA" + "b" * 32, to=number_201, caller="+4930111222", caller_name="Bernd")
            b = fake.add_recording(make_wav(2.0), call_sid="CA" + "b" * 32, start_time=started).sid
            fake.add_call("CA" + "c" * 32, to=number_202, caller="anonymous")
            c = fake.add_recording(make_wav(2.0), call_sid="CA" + "c" * 32).sid
            fake.add_call("CA" + "d" * 32, to="+15559999999", caller="+4930999")
            d = fake.add_recording(make_wav(1.0), call_sid="CA" + "d" * 32).sid
            # E: an admin discarded its job (vm2mail spool discard): reconcile must not bring it back.
            fake.add_call("CA" + "e" * 32, to=number_201, caller="+4930555")
            e = fake.add_recording(make_wav(1.0), call_sid="CA" + "e" * 32).sid
            (s.spool / "discarded").mkdir()
            (s.spool / "discarded" / f"twilio-{e}.json").write_text("{}")

            first = await acli("reconcile", "-c", config, "--since", "1h")
            assert first.returncode == 0, first.stderr
            lines = first.stdout.splitlines()
            assert any(b in line and "201" in line and "delivered" in line for line in lines), first.stdout
            assert any(c in line and "202" in line and " delivered" in line for line in lines)
            assert any(a in line and "already delivered" in line for line in lines)
            assert any(d in line and "no mailbox" in line and "+15559999999" in line for line in lines)
            assert any(e in line and "already in the spool: discarded" in line for line in lines)
            assert "delivered 2" in first.stdout
            assert {b, c} <= fake.deleted  # delivered recordings are deleted at Twilio, as by the gateway

            second = await acli("reconcile", "-c", config, "--since", "1h")
            assert second.returncode == 0, second.stderr
            assert "nothing to do" in second.stdout
            return a, b, second.stdout.splitlines()

    a, b, second_lines = asyncio.run(scenario())
    assert any(a in line and "already delivered" in line for line in second_lines)
    inbox_201 = [parse(m.raw) for m in messages(s, "201")]
    assert sorted(m["Message-ID"] for m in inbox_201) == sorted(
        f"<{sid}@{s.config.server.mail_domain}>" for sid in (a, b)
    )
    bernd = next(m for m in inbox_201 if b in m["Message-ID"])
    assert bernd["X-Vm2mail-Caller"] == "+4930111222" and bernd["X-Vm2mail-Caller-Name"] == "Bernd"
    assert bernd["X-Vm2mail-Called"] == number_201
    assert bernd["Date"].datetime == started  # the recording's start, not the reconcile run
    [anonymous] = [parse(m.raw) for m in messages(s, "202")]
    assert anonymous["X-Vm2mail-Caller"] == "anonymous"


def test_reconcile_errors(stack: Callable[..., Stack]) -> None:
    s = stack({"201": {}})
    bad = cli("reconcile", "-c", str(s.config.source), "--since", "yesterday")
    assert bad.returncode == 1 and "--since" in bad.stderr
    # Twilio unreachable (the stand-in is not started): a clear error, exit 1, nothing spooled.
    down = cli("reconcile", "-c", str(s.config.source))
    assert down.returncode == 1 and "Twilio" in down.stderr
    assert not list((s.spool / "new").glob("*.json"))
