"""Turn any recording ffmpeg can read into a voice-quality MP3 in one subprocess, measuring its peak level."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mutagen.mp3

from vm2mail.errors import AudioError
from vm2mail.priority import lower_priority

log = logging.getLogger(__name__)

# mutagen.mp3.MP3 has an untyped constructor; one Any alias keeps mypy --strict quiet.
_MP3: Any = mutagen.mp3.MP3

FFMPEG = "ffmpeg"
# A voicemail encodes in about a second; an ffmpeg still running after this is stuck (or fed a
# pathological file) and is killed, so the job is retried later instead of tying up a worker.
FFMPEG_TIMEOUT_SECONDS = 120.0

# MP3 settings for voice. 16 kHz is the lowest MPEG-2 (ISO/IEC 13818-3, "LSF") rate: every player and
# Twilio <Play> supports it, whereas 8 kHz would be the non-standard MPEG-2.5 extension. It keeps the whole
# 300-3400 Hz telephone band and most of a wideband (HD voice) PBX recording. 32 kbit/s CBR mono is
# transparent for speech at that rate, costs 240 KB a minute (14 MB an hour), and CBR gives every
# player exact seeking and a duration from the file size even where the Xing/Info header is ignored.
SAMPLE_RATE = 16000
BITRATE = "32k"

# ffmpeg writes one stderr line per damaged packet, so a long corrupt file could log megabytes: we read
# stderr line by line and keep only the last few lines (each capped) for the error reason, plus the
# volumedetect summary. Memory stays constant whatever the input; audio never passes through Python.
STDERR_TAIL_LINES = 20
STDERR_LINE_MAX = 500

_MAX_VOLUME = re.compile(r"max_volume:\s*(-?(?:inf|[0-9.]+))\s*dB")
_N_SAMPLES = re.compile(r"n_samples:\s*(\d+)")
_LEVEL = re.compile(r"^(?:\[[^\]]*@ 0x[0-9a-f]+\] )?\[(\w+)\] ?")
# Failures of the host rather than of the recording: retrying later can help. (Not ENOMEM: ffmpeg
# reports "Cannot allocate memory" for corrupt headers that claim absurd sizes.)
_TEMPORARY = ("No space left on device", "Too many open files")


@dataclass(frozen=True)
class Encoded:
    """The MP3 written and what we learnt about it on the way."""

    path: Path
    duration: float  # seconds, from the MP3's Xing/Info frame (may exceed the input by ~0.1 s)
    peak_dbfs: float | None  # highest sample level, dB relative to full scale; None if not measured
    silent: bool  # True when the peak stays below the silence threshold (nobody spoke)


def ffmpeg_args(src: Path, dst: Path) -> list[str]:
    """The single ffmpeg invocation: decode, downmix, measure, encode."""
    return [
        FFMPEG,
        "-nostdin",  # never read the terminal (we run under asyncio, without a tty)
        "-hide_banner",
        "-nostats",
        # "info" is needed for volumedetect's summary; "level" tags each line so errors can be told apart.
        "-loglevel",
        "level+info",
        "-i",
        str(src),
        # First audio stream only: M4A/MP3 may carry cover art (a video stream), WAV a data chunk.
        "-map",
        "0:a:0",
        "-vn",
        "-sn",
        "-dn",
        "-map_metadata",
        "-1",  # drop the input's tags: ID3 tags are written by vm2mail.audio.tags
        "-af",
        "volumedetect",  # peak over all input channels, before the downmix
        "-ac",
        "1",
        "-ar",
        str(SAMPLE_RATE),
        "-c:a",
        "libmp3lame",
        "-b:a",
        BITRATE,
        "-f",
        "mp3",
        "-id3v2_version",
        "0",  # no ID3 from ffmpeg (it would only hold its own name); Xing/Info frame is still written
        "-write_id3v1",
        "0",
        "-y",
        str(dst),
    ]


async def _read_stderr(stream: asyncio.StreamReader) -> tuple[list[str], float | None, int | None]:
    """Drain ffmpeg's stderr with bounded memory: the last lines, the peak and the sample count."""
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
    peak: float | None = None
    samples: int | None = None
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # one line longer than the StreamReader limit (64 KiB): skip it
            raw = b"[error] (overlong log line)\n"
        if not raw:
            break
        line = raw.decode(errors="replace").rstrip()[:STDERR_LINE_MAX]
        if match := _MAX_VOLUME.search(line):
            peak = float(match.group(1))
        elif match := _N_SAMPLES.search(line):
            samples = int(match.group(1))
        tail.append(line)
    return list(tail), peak, samples


def _reason(lines: list[str]) -> str:
    """The most telling ffmpeg lines, without the level tags: errors first, else the last lines."""
    errors = [line for line in lines if (m := _LEVEL.match(line)) and m.group(1) in ("error", "fatal")]
    chosen = errors[-3:] or lines[-3:]
    cleaned = [_LEVEL.sub("", line).strip() for line in chosen]
    return "; ".join(line for line in cleaned if line) or "no diagnostics"


async def transcode_to_mp3(
    src: Path, dst: Path, *, silence_dbfs: float = -50.0, limit_seconds: float = FFMPEG_TIMEOUT_SECONDS
) -> Encoded:
    """Decode ``src`` (any format ffmpeg reads; the header decides) into a mono voice MP3 at ``dst``.

    The MP3 is written to a ``.part`` file beside ``dst`` and renamed on success, so ``dst`` never holds
    a half-written file. A cancelled task kills ffmpeg. Raises AudioError: permanent for recordings
    that cannot be decoded (corrupt, empty, no audio stream), temporary when ffmpeg is missing or the
    host fails (disk full, killed by a signal).
    """
    await asyncio.to_thread(_check_input, src)
    if shutil.which(FFMPEG) is None:
        raise AudioError("ffmpeg is not installed or not on PATH", temporary=True)

    part = dst.with_name(f".{dst.name}.part")
    try:
        proc = await asyncio.create_subprocess_exec(
            *ffmpeg_args(src, part),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise AudioError(f"cannot start ffmpeg: {exc}", temporary=True) from exc
    # Encoding is batch work: at a lower CPU priority it never delays a webhook reply or an SMTP 250
    # (the front doors share the cores with the workers). Lowered from outside, after the start, so
    # nothing runs between fork and exec, and a sandbox that denies it costs priority, not the job.
    lower_priority(proc.pid)

    assert proc.stderr is not None
    try:
        async with asyncio.timeout(limit_seconds):
            lines, peak, samples = await _read_stderr(proc.stderr)
            returncode = await proc.wait()
    except BaseException as exc:
        # Deadline, cancellation (shutdown): do not leave ffmpeg running or the part file behind.
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await asyncio.shield(proc.wait())
        _discard(part)
        if isinstance(exc, TimeoutError):
            reason = f"ffmpeg did not finish within {limit_seconds:.0f}s; killed"
            raise AudioError(reason, temporary=True) from exc
        raise

    try:
        if returncode < 0:
            raise AudioError(f"ffmpeg killed by signal {-returncode}", temporary=True)
        if returncode != 0:
            # Paths are the spool's business; the admin reads file names.
            reason = _reason(lines).replace(str(src), src.name).replace(str(part), dst.name)
            if "matches no streams" in reason:
                reason = "no audio stream in the file"
            temporary = any(marker in reason for marker in _TEMPORARY)
            raise AudioError(f"cannot decode {src.name}: {reason}", temporary=temporary)
        if samples == 0:
            raise AudioError(f"recording {src.name} contains no audio samples", temporary=False)
        duration = await asyncio.to_thread(_publish, src, part, dst)
    finally:
        _discard(part)

    if any((m := _LEVEL.match(line)) and m.group(1) == "error" for line in lines):
        # ffmpeg skipped damaged packets but produced audio: deliver it, tell the admin.
        log.warning("recording %s decoded with errors: %s", src.name, _reason(lines))
    silent = peak is None or peak < silence_dbfs
    return Encoded(path=dst, duration=duration, peak_dbfs=peak, silent=silent)


def _check_input(src: Path) -> None:
    try:
        size = src.stat().st_size
    except OSError as exc:
        raise AudioError(f"recording {src.name} cannot be read: {exc.strerror}", temporary=False) from exc
    if size == 0:
        raise AudioError(f"recording {src.name} is empty (0 bytes)", temporary=False)


def _publish(src: Path, part: Path, dst: Path) -> float:
    """Check the MP3 ffmpeg wrote, rename it into place and return its length in seconds.

    The length comes from the Xing/Info frame ffmpeg writes (frame count × 576 samples / 16 kHz), so it
    includes the encoder's delay and padding: up to about 0.1 s more than the input.
    """
    try:
        duration = float(_MP3(part).info.length) if part.stat().st_size else 0.0
    except mutagen.MutagenError as exc:
        raise AudioError(f"ffmpeg wrote an unreadable MP3 for {src.name}: {exc}", temporary=False) from exc
    if duration <= 0:
        raise AudioError(f"recording {src.name} contains no audio samples", temporary=False)
    os.replace(part, dst)
    return duration


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)
