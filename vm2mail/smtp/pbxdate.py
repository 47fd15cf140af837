"""Read the dates PBXs write in their voicemail e-mails, in English and German, into aware datetimes."""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime, tzinfo
from email.utils import parsedate_to_datetime

# Asterisk formats dates with strftime under the locale it runs in (voicemail.conf `locale=de_DE`),
# so the Date header reads "Sa, 05 Dez 2026 14:03:00 +0100" and RFC 5322 parsers give up on it.
# German names (glibc de_DE, both abbreviated and full) map onto the English ones RFC 5322 §3.3 uses.
_MONTHS = {
    "jan": 1, "januar": 1, "jän": 1, "jänner": 1, "feb": 2, "februar": 2, "mär": 3, "mrz": 3,
    "märz": 3, "maerz": 3, "apr": 4, "april": 4, "mai": 5, "jun": 6, "juni": 6, "jul": 7, "juli": 7,
    "aug": 8, "august": 8, "sep": 9, "sept": 9, "september": 9, "okt": 10, "oktober": 10, "nov": 11,
    "november": 11, "dez": 12, "dezember": 12, "january": 1, "february": 2, "march": 3, "mar": 3,
    "may": 5, "june": 6, "july": 7, "oct": 10, "october": 10, "dec": 12, "december": 12,
}  # fmt: skip
_MONTH_ABBR = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_WORD = r"[A-Za-zÄÖÜäöü]+"
# "Sa, 05 Dez 2026 14:03:00 +0100", "Sat, 5 Dec 2026 14:03 +0100" (weekday optional).
_RFC_LIKE = re.compile(
    rf"^(?:{_WORD}\.?,?\s+)?(?P<day>\d{{1,2}})\.?\s+(?P<month>{_WORD})\.?\s+(?P<year>\d{{4}})\s+"
    r"(?P<time>\d{1,2}:\d{2}(?::\d{2})?)\s*(?P<zone>[+-]\d{4}|[A-Z]{1,5})?\s*$"
)
# Asterisk's default body, en ("on Saturday, December 05, 2026 at 02:03:00 PM") and de
# ("am Samstag, 05. Dezember 2026 um 14:03:00"); both without a zone: the PBX's local time.
_BODY_EN = re.compile(
    rf"\b(?:{_WORD},\s+)?(?P<month>{_WORD})\s+(?P<day>\d{{1,2}}),\s+(?P<year>\d{{4}})\s+at\s+"
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?\s*(?P<ampm>[AP]M)?",
    re.IGNORECASE,
)
_BODY_DE = re.compile(
    rf"\b(?:{_WORD},\s+)?(?P<day>\d{{1,2}})\.\s*(?P<month>{_WORD})\.?\s+(?P<year>\d{{4}})\s+(?:um\s+)?"
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?",
    re.IGNORECASE,
)


def _month(word: str) -> int | None:
    return _MONTHS.get(word.lower().rstrip("."))


def header_date(value: str) -> datetime | None:
    """An RFC 5322 date, or one with German (or otherwise localized) day and month names."""
    text = " ".join(value.split())
    if not text:
        return None
    with contextlib.suppress(TypeError, ValueError, IndexError):
        when = parsedate_to_datetime(text)
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)  # RFC 5322 "-0000"
    match = _RFC_LIKE.match(text)
    if match is None or (month := _month(match.group("month"))) is None:
        return None
    zone = match.group("zone") or "-0000"
    english = (
        f"{match.group('day')} {_MONTH_ABBR[month - 1]} {match.group('year')} {match.group('time')} {zone}"
    )
    with contextlib.suppress(TypeError, ValueError, IndexError):
        when = parsedate_to_datetime(english)
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return None


def body_date(text: str, tz: tzinfo) -> datetime | None:
    """The date in an Asterisk-style body ("on …, December 05, 2026 at 02:03:00 PM" or the German
    "am …, 05. Dezember 2026 um 14:03:00"), read in ``tz`` (the PBX's local time has no zone)."""
    for regex in (_BODY_EN, _BODY_DE):
        for match in regex.finditer(text):
            month = _month(match.group("month"))
            if month is None:
                continue
            hour = int(match.group("hour"))
            ampm = (match.groupdict().get("ampm") or "").upper()
            if ampm:
                hour = hour % 12 + (12 if ampm == "PM" else 0)
            with contextlib.suppress(ValueError):
                return datetime(
                    int(match.group("year")), month, int(match.group("day")), hour,
                    int(match.group("minute")), int(match.group("second") or 0), tzinfo=tz,
                )  # fmt: skip
    return None
