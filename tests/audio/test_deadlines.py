"""Every outside call a job makes has a deadline: a hung peer costs at most that long, then a retry."""

from __future__ import annotations

import asyncio
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures.gpg import GpgKeys
from vm2mail.audio.transcode import transcode_to_mp3
from vm2mail.crypto.pgp import Encryptor
from vm2mail.errors import AudioError, CryptoError


def silent_unix_listener(path: Path) -> socket.socket:
    """A gpg-agent that accepts connections and never greets: gpg waits on it forever."""
    subprocess.run(["gpgconf", "--homedir", str(path.parent), "--kill", "gpg-agent"], check=False)
    # The dying agent removes its socket by name on its way out: wait for that, or it may remove ours.
    deadline = time.monotonic() + 5
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    return listener


def test_a_gpg_stuck_on_its_agent_is_killed_at_the_deadline_as_a_temporary_error(
    gpg_keys: GpgKeys,
) -> None:
    anna = gpg_keys("Anna")
    armored = Encryptor(gpg_keys.home).encrypt(b"secret words", [anna.fingerprint])
    assert Encryptor(anna.secret_home).decrypt(armored) == b"secret words"  # the agent works ...
    listener = silent_unix_listener(anna.secret_home / "S.gpg-agent")  # ... until it hangs
    try:
        started = time.monotonic()
        with pytest.raises(CryptoError) as caught:
            Encryptor(anna.secret_home, timeout=2.0).decrypt(armored)
        elapsed = time.monotonic() - started
    finally:
        listener.close()
    assert caught.value.temporary, caught.value  # the job is retried later, not failed
    assert "did not finish within 2s" in str(caught.value)
    assert elapsed < 10, elapsed  # the deadline (2 s), with room for a loaded machine


def endless_wav(path: Path, size: int = 2 << 30) -> Path:
    """A WAV of about 37 hours (sparse zeros, no disk used): ffmpeg would encode it for minutes."""
    header = (
        b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
        + b"data" + struct.pack("<I", 0xFFFFFFFF)
    )  # fmt: skip
    with path.open("wb") as out:
        out.write(header)
        out.truncate(size)
    return path


def test_an_ffmpeg_past_its_deadline_is_killed_and_leaves_no_part_file(tmp_path: Path) -> None:
    src = endless_wav(tmp_path / "endless.wav")
    dst = tmp_path / "out.mp3"
    started = time.monotonic()
    with pytest.raises(AudioError) as caught:
        asyncio.run(transcode_to_mp3(src, dst, limit_seconds=2.0))
    elapsed = time.monotonic() - started
    assert caught.value.temporary and "did not finish within 2s" in str(caught.value)
    assert elapsed < 10, elapsed  # the deadline (2 s), with room for a loaded machine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["endless.wav"]  # no MP3, no .part
    assert subprocess.run(["pgrep", "-f", str(src)], capture_output=True).returncode == 1  # ffmpeg gone
