"""The one place that decides what a phone number is, how it is stored (E.164) and how people see it."""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat

# What carriers, Twilio and PBXs put where the number is withheld: the words, and the numbers that
# spell ANONYMOUS, UNAVAILABLE, RESTRICTED and BLOCKED on a keypad (Twilio's "Caller ID" notes,
# https://www.twilio.com/docs/voice/twiml#request-parameters).
WITHHELD = frozenset(
    {
        "",
        "anonymous",
        "restricted",
        "unavailable",
        "unknown",
        "<unknown>",
        "private",
        "blocked",
        "withheld",
        "an unknown caller",
        "+266696687",
        "+86282452253",
        "+7378742833",
        "+2562533",
    }
)
# Internal PBX extensions are short; no public number anywhere has 6 digits or fewer including the
# area code (ITU-T E.164 §6: national significant numbers of at least 7 digits in practice).
MAX_EXTENSION_DIGITS = 6
_SEPARATORS = re.compile(r"[\s().\-/]")
_DIALABLE = re.compile(r"^\+?[0-9]+$")


@dataclass(frozen=True)
class Reading:
    """A caller ID as a PBX or carrier sent it, read: a public number, an extension, or neither."""

    number: str | None = None  # E.164 ("+493012345678")
    extension: str | None = None  # an internal extension ("201"), or the extension of ``number``


def withheld(raw: str | None) -> bool:
    return (raw or "").strip().lower() in WITHHELD


def _country(country: str | None) -> str | None:
    return country.upper() if country else None


def is_e164(value: str) -> bool:
    """True for a number already in canonical E.164 form with an assigned country calling code.

    Test ranges (+1 555 …) are accepted: libphonenumber calls them invalid, but they are what every
    demo and test uses, and a configured number is the admin's statement, not a guess.
    """
    if not value.startswith("+") or not _DIALABLE.match(value):
        return False
    try:
        parsed = phonenumbers.parse(value, None)
    except NumberParseException:
        return False
    region = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
    return region != phonenumbers.UNKNOWN_REGION and _e164(parsed) == value


def e164_problem(value: str) -> str | None:
    """A config check: None for a canonical E.164 number, else the problem in words."""
    return None if is_e164(value) else f"{value!r} is not an E.164 number (like +4930123456)"


def _parse(text: str, region: str | None) -> PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except NumberParseException:
        return None


def _e164(parsed: PhoneNumber) -> str:
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)


def read(raw: str | None, country: str | None = None) -> Reading:
    """Read a caller ID: ``+49 30 1234567``, ``004930…``, ``030…`` and ``4930…`` (with ``country``
    DE), ``+1 202 555 0123 ext. 12``, or an extension such as ``201``; withheld words give nothing."""
    text = (raw or "").strip()
    if withheld(text):
        return Reading()
    region = _country(country)
    compact = _SEPARATORS.sub("", text)
    if compact.isdigit() and len(compact) <= MAX_EXTENSION_DIGITS:
        return Reading(extension=compact)
    candidates: list[PhoneNumber] = []
    if text.startswith("+") or compact.startswith("00"):
        # 00 is the international prefix of most of the world (ITU-T E.164 Annex); libphonenumber
        # knows it per region, but without a region "00" alone must still work.
        found = _parse("+" + compact[2:] if compact.startswith("00") else text, None)
        candidates += [found] if found else []
    else:
        national = _parse(text, region) if region else None
        bare = _parse("+" + compact, None) if compact.isdigit() else None  # "4930…": a plus lost
        # Prefer whichever is a valid number; the national reading first, since a PBX in that
        # country writes national numbers far more often than international ones without "+".
        candidates += [n for n in (national, bare) if n is not None]
    for valid_only in (True, False):
        for parsed in candidates:
            ok = (
                phonenumbers.is_valid_number(parsed)
                if valid_only
                else phonenumbers.is_possible_number(parsed)
            )
            if ok:
                return Reading(number=_e164(parsed), extension=parsed.extension or None)
    return Reading()


def display(number: str | None, country: str | None = None) -> str | None:
    """How a person reads ``number``: the national format within ``country`` ("030 1234567"),
    the international one from elsewhere ("+49 30 1234567"); None when there is no number."""
    if not number:
        return None
    parsed = _parse(number, None)
    if parsed is None:
        return number
    region = _country(country)
    same = region is not None and phonenumbers.region_code_for_number(parsed) == region
    return phonenumbers.format_number(
        parsed, PhoneNumberFormat.NATIONAL if same else PhoneNumberFormat.INTERNATIONAL
    )


def tel_uri(number: str | None, extension: str | None = None) -> str | None:
    """An RFC 3966 global ``tel:`` URI for an E.164 number (with ``;ext=``); None for anything else."""
    if not number or not is_e164(number):
        return None
    return f"tel:{number};ext={extension}" if extension else f"tel:{number}"
