"""audio.tags: ID3v2.4 tags written by mutagen, read back by ffprobe the way a player would see them."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from mutagen.id3 import ID3

from vm2mail.audio.tags import VoicemailTags, write_tags
from vm2mail.audio.transcode import transcode_to_mp3
from vm2mail.errors import AudioError

SAMPLE = Path("/work/shared/samples/short-hello.wav")
WHEN = datetime(2026, 11, 23, 10, 30, 5, tzinfo=ZoneInfo("Europe/Berlin"))


@pytest.fixture
def mp3(tmp_path: Path) -> Path:
    return asyncio.run(transcode_to_mp3(SAMPLE, tmp_path / "vm.mp3")).path


def ffprobe_tags(path: Path) -> dict[str, str]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        check=True,
        capture_output=True,
    ).stdout
    info = json.loads(out)
    assert info["streams"][0]["codec_name"] == "mp3"
    tags: dict[str, str] = info["format"].get("tags", {})
    return tags


def make_tags(**overrides: object) -> VoicemailTags:
    fields: dict[str, object] = {
        "title": "Voicemail from Jürgen Müller 😀",
        "caller": "+4930123456",
        "caller_name": "Jürgen Müller 😀",
        "called": "+4930999000",
        "date": WHEN,
        "duration": 83.4,
        "mailbox": "201",
        "call_id": "CA0123456789abcdef0123456789abcdef",
    }
    fields.update(overrides)
    return VoicemailTags(**fields)  # type: ignore[arg-type]


def test_ffprobe_reads_every_tag(mp3: Path) -> None:
    write_tags(mp3, make_tags())
    tags = ffprobe_tags(mp3)
    assert tags["title"] == "Voicemail from Jürgen Müller 😀"
    assert tags["artist"] == "Jürgen Müller 😀"
    assert tags["album"] == "Voicemail 201"
    assert tags["date"] == "2026-11-23T10:30:05"
    assert tags["TLEN"] == "83400"
    assert tags["caller"] == "+4930123456"
    assert tags["caller_name"] == "Jürgen Müller 😀"
    assert tags["called"] == "+4930999000"
    assert tags["mailbox"] == "201"
    assert tags["call_id"] == "CA0123456789abcdef0123456789abcdef"
    assert tags["duration"] == "83"
    assert tags["recorded"] == "2026-11-23T10:30:05+01:00"
    assert "Jürgen Müller 😀" in tags["comment"]


def test_tag_is_id3v24_in_utf8_without_id3v1(mp3: Path) -> None:
    write_tags(mp3, make_tags())
    data = mp3.read_bytes()
    assert data[:5] == b"ID3\x04\x00"  # ID3v2.4.0 header (ID3v2.4 structure §3.1)
    assert data[-128:-125] != b"TAG"  # no Latin-1 ID3v1 trailer
    id3 = ID3(mp3)
    assert id3.version == (2, 4, 0)
    assert all(frame.encoding == 3 for frame in id3.values() if hasattr(frame, "encoding"))
    assert "Jürgen Müller 😀".encode() in data


@pytest.mark.parametrize(
    ("caller", "caller_name", "artist"),
    [(None, None, "Unknown caller"), ("+4930123", None, "+4930123"), (None, "Büro Nord", "Büro Nord")],
)
def test_artist_falls_back(mp3: Path, caller: str | None, caller_name: str | None, artist: str) -> None:
    write_tags(mp3, make_tags(caller=caller, caller_name=caller_name))
    tags = ffprobe_tags(mp3)
    assert tags["artist"] == artist
    assert tags["caller"] == (caller or "anonymous")
    assert ("caller_name" in tags) == (caller_name is not None)


def test_rewriting_replaces_old_tags(mp3: Path) -> None:
    write_tags(mp3, make_tags(caller_name="First Name"))
    write_tags(mp3, make_tags(caller_name="Second Name", title="Again"))
    tags = ffprobe_tags(mp3)
    assert tags["artist"] == "Second Name"
    assert tags["title"] == "Again"
    assert len(ID3(mp3).getall("TPE1")) == 1


def test_audio_still_plays_after_tagging(mp3: Path) -> None:
    before = mp3.stat().st_size
    write_tags(mp3, make_tags())
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(mp3), "-f", "null", "-"],
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0 and result.stderr == b""
    assert mp3.stat().st_size > before


def test_unwritable_file_is_an_audio_error(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"cannot write tags to missing\.mp3"):
        write_tags(tmp_path / "missing.mp3", make_tags())
