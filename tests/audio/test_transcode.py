"""audio.transcode: real ffmpeg turns samples and odd sox/ffmpeg-made inputs into voice MP3s, or says why."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from vm2mail.audio import transcode as audio
from vm2mail.audio.transcode import Encoded, transcode_to_mp3
from vm2mail.errors import AudioError

SAMPLES = Path("/work/shared/samples")
SAMPLE_NAMES = ["en-callback-request", "de-rueckruf", "short-hello", "silence-3s", "greeting-sales"]
SPEECH = SAMPLES / "en-callback-request.wav"
NOISE = random.Random(3156)  # reproducible garbage


def encode(src: Path, dst: Path, **kwargs: float) -> Encoded:
    return asyncio.run(transcode_to_mp3(src, dst, **kwargs))


def probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        check=True,
        capture_output=True,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def sox(*args: str) -> None:
    subprocess.run(["sox", *args], check=True, capture_output=True)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, capture_output=True)


def assert_voice_mp3(path: Path, expected_seconds: float) -> None:
    info = probe(path)
    (stream,) = info["streams"]
    assert stream["codec_name"] == "mp3"
    assert stream["channels"] == 1
    assert stream["sample_rate"] == "16000"
    assert int(stream["bit_rate"]) == 32000
    assert float(info["format"]["duration"]) == pytest.approx(expected_seconds, abs=0.3)


def wav_seconds(path: Path) -> float:
    return float(probe(path)["format"]["duration"])


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_each_sample_becomes_a_voice_mp3(name: str, tmp_path: Path) -> None:
    src = SAMPLES / f"{name}.wav"
    dst = tmp_path / f"{name}.mp3"
    encoded = encode(src, dst)
    assert encoded.path == dst
    assert_voice_mp3(dst, wav_seconds(src))
    assert encoded.duration == pytest.approx(wav_seconds(src), abs=0.2)
    assert not list(tmp_path.glob(".*.part"))


def test_silence_is_detected(tmp_path: Path) -> None:
    silent = encode(SAMPLES / "silence-3s.wav", tmp_path / "s.mp3")
    spoken = encode(SPEECH, tmp_path / "e.mp3")
    assert silent.silent
    assert silent.peak_dbfs is not None and silent.peak_dbfs < -60
    assert not spoken.silent
    assert spoken.peak_dbfs is not None and spoken.peak_dbfs > -20
    # The threshold is the caller's: a very strict one calls even speech "silent".
    strict = encode(SPEECH, tmp_path / "x.mp3", silence_dbfs=0.0)
    assert strict.silent


@pytest.mark.parametrize(
    ("kind", "make", "codec"),
    [
        ("stereo-44k1.wav", lambda s, d: sox(s, "-r", "44100", "-c", "2", d), "pcm_s16le"),
        ("ulaw.wav", lambda s, d: sox(s, "-e", "u-law", d), "pcm_mulaw"),
        ("gsm.wav", lambda s, d: sox(s, "-e", "gsm-full-rate", d), "gsm_ms"),
        ("twilio.mp3", lambda s, d: ffmpeg("-i", s, "-c:a", "libmp3lame", d), "mp3"),
        ("opus.ogg", lambda s, d: ffmpeg("-i", s, "-c:a", "libopus", d), "opus"),
        ("aac.m4a", lambda s, d: ffmpeg("-i", s, "-c:a", "aac", d), "aac"),
        ("float.wav", lambda s, d: sox(s, "-e", "floating-point", "-b", "32", "-r", "48000", d), "pcm_f32le"),
    ],
)
def test_odd_inputs_are_read_by_their_header(kind: str, make: Any, codec: str, tmp_path: Path) -> None:
    # The extension says nothing: the file is renamed to .bin so ffmpeg must probe the content.
    made = tmp_path / kind
    make(str(SPEECH), str(made))
    assert probe(made)["streams"][0]["codec_name"] == codec
    src = made.rename(tmp_path / "recording.bin")
    encoded = encode(src, tmp_path / "out.mp3")
    assert_voice_mp3(encoded.path, wav_seconds(SPEECH))
    assert not encoded.silent


def test_input_tags_are_dropped(tmp_path: Path) -> None:
    tagged = tmp_path / "tagged.mp3"
    ffmpeg("-i", str(SPEECH), "-metadata", "title=secret internal title", "-c:a", "libmp3lame", str(tagged))
    encoded = encode(tagged, tmp_path / "out.mp3")
    assert "tags" not in probe(encoded.path)["format"]


def test_truncated_wav_keeps_the_audio_that_is_there(tmp_path: Path) -> None:
    # A recording cut short in transfer (header promises more): deliver what arrived.
    data = SPEECH.read_bytes()
    src = tmp_path / "cut.wav"
    src.write_bytes(data[: len(data) // 2])
    encoded = encode(src, tmp_path / "out.mp3")
    assert encoded.duration == pytest.approx(wav_seconds(SPEECH) / 2, abs=0.3)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt " + NOISE.randbytes(400), "cannot decode"),
        (NOISE.randbytes(4096), "cannot decode"),
        (b"<html><body>404 Not Found</body></html>\n", "cannot decode"),
    ],
    ids=["zero-length", "corrupt-wav", "random-bytes", "html-error-page"],
)
def test_undecodable_input_is_a_permanent_error(content: bytes, reason: str, tmp_path: Path) -> None:
    src = tmp_path / "bad.wav"
    src.write_bytes(content)
    dst = tmp_path / "out.mp3"
    with pytest.raises(AudioError) as caught:
        encode(src, dst)
    assert caught.value.temporary is False
    assert reason in str(caught.value)
    assert "bad.wav" in str(caught.value)
    assert not dst.exists() and not list(tmp_path.glob(".*.part"))


def test_header_only_wav_has_no_audio(tmp_path: Path) -> None:
    src = tmp_path / "header.wav"
    src.write_bytes(SPEECH.read_bytes()[:44])
    with pytest.raises(AudioError, match="no audio samples") as caught:
        encode(src, tmp_path / "out.mp3")
    assert caught.value.temporary is False


def test_file_without_audio_stream(tmp_path: Path) -> None:
    src = tmp_path / "picture.png"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=16x16", "-frames:v", "1", str(src))
    with pytest.raises(AudioError, match="no audio stream") as caught:
        encode(src, tmp_path / "out.mp3")
    assert caught.value.temporary is False


def test_missing_ffmpeg_is_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audio, "FFMPEG", "ffmpeg-not-installed-here")
    with pytest.raises(AudioError, match="ffmpeg") as caught:
        encode(SPEECH, tmp_path / "out.mp3")
    assert caught.value.temporary is True


def test_existing_destination_is_replaced_only_on_success(tmp_path: Path) -> None:
    dst = tmp_path / "out.mp3"
    dst.write_bytes(b"old")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(NOISE.randbytes(1000))
    with pytest.raises(AudioError):
        encode(bad, dst)
    assert dst.read_bytes() == b"old"
    encode(SPEECH, dst)
    assert probe(dst)["streams"][0]["codec_name"] == "mp3"


def test_cancel_kills_ffmpeg_and_cleans_up(tmp_path: Path) -> None:
    src = tmp_path / "long.wav"
    sox("-n", "-r", "8000", "-c", "1", "-b", "16", str(src), "synth", "1800", "sine", "440")
    part = tmp_path / ".out.mp3.part"

    async def scenario() -> None:
        task = asyncio.create_task(transcode_to_mp3(src, tmp_path / "out.mp3"))
        await asyncio.sleep(0.3)
        assert part.exists(), "ffmpeg should be writing by now"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert not part.exists() and not (tmp_path / "out.mp3").exists()
    # No ffmpeg of ours left running on this file.
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert str(src) not in ps


def test_loop_stays_responsive_during_encode(tmp_path: Path) -> None:
    src = tmp_path / "m60.wav"
    sox("-n", "-r", "8000", "-c", "1", "-b", "16", str(src), "synth", "60", "sine", "440", "vol", "0.5")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    async def scenario() -> Encoded:
        tick_task = asyncio.create_task(ticker())
        try:
            return await transcode_to_mp3(src, tmp_path / "out.mp3")
        finally:
            tick_task.cancel()

    encoded = asyncio.run(scenario())
    assert encoded.duration == pytest.approx(60.0, abs=0.2)
    assert ticks >= 3


@pytest.mark.slow
def test_one_hour_recording_in_constant_memory(tmp_path: Path) -> None:
    src = tmp_path / "hour.wav"
    sox("-n", "-r", "8000", "-c", "1", "-b", "16", str(src), "synth", "3600", "sine", "440", "vol", "0.5")
    assert src.stat().st_size > 57_000_000
    tracemalloc.start()
    started = time.monotonic()
    try:
        encoded = encode(src, tmp_path / "hour.mp3")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - started
    assert encoded.duration == pytest.approx(3600.0, abs=0.5)
    assert 14_000_000 < encoded.path.stat().st_size < 14_800_000  # 32 kbit/s CBR × 3600 s
    assert peak < 2_000_000, f"Python held {peak} bytes: audio must flow file to file"
    assert elapsed < 60
