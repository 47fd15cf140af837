"""The YAML loader: a working file loads; each mistake is reported with file, line and key path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.fixtures.config import ACCOUNT_SID
from vm2mail.config import load_config
from vm2mail.errors import ConfigError

GOOD = f"""\
server:
  listen: "127.0.0.1:8080"
  public_url: "https://vm.example.com/"
  spool_dir: spool
  secret_key: "${{VM_SECRET}}"
twilio:
  account_sid: {ACCOUNT_SID}
  auth_token_file: token.txt
  api_base_url: "https://api.twilio.com"
imap: {{host: 127.0.0.1, port: 143, security: starttls}}
gpg: {{home: gnupg}}
defaults: {{ring_seconds: 20, max_message_seconds: 300, min_message_seconds: 1, folder: Voicemail,
           language: en-US, timezone: Europe/Berlin}}
mailboxes:
  "201":
    name: Anna Schmidt
    email: anna@example.com
    imap_user: anna@example.com
    imap_password: "${{ANNA_IMAP_PASSWORD}}"
    numbers: ["+15550002001"]
    forward_to: "+15550009999"
  "202":
    name: Jürgen Müller
    imap_user: juergen
    imap_password: pw
    numbers: ["+15550002002"]
    language: de-DE
    ring_seconds: 12
  "300": {{name: Sales, numbers: ["+15550003000"], members: ["201", "202"]}}
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "token.txt").write_text("tok-from-file\n")
    path = tmp_path / "vm.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VM_SECRET", "0123456789abcdef-secret")
    monkeypatch.setenv("ANNA_IMAP_PASSWORD", "anna-from-env")


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return info.value.problems


def test_good_file_loads_with_defaults_secrets_and_relative_paths(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.server.public_url == "https://vm.example.com"
    assert config.server.spool_dir == tmp_path / "spool"
    assert config.server.mail_domain == "vm.example.com"
    assert config.twilio.auth_token == "tok-from-file"
    anna, juergen, sales = (config.mailboxes[k] for k in ("201", "202", "300"))
    assert anna.imap_password == "anna-from-env"
    assert anna.ring_seconds == 20 and juergen.ring_seconds == 12
    assert juergen.language == "de-DE" and anna.language == "en-US"
    assert config.mailbox_for_number("+15550003000") is sales
    assert [m.id for m in config.delivery_targets(sales)] == ["201", "202"]
    assert config.mailbox_for_number("+19999999999") is None


def test_secrets_never_appear_in_repr(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    text = repr(config)
    for secret in ("tok-from-file", "anna-from-env", "0123456789abcdef-secret"):
        assert secret not in text


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            '    forward_to: "+15550009999"',
            '    forward_to: "+15550009999"\n    colour: red',
            "vm.yaml:22: mailboxes.201.colour: unknown key",
        ),
        (
            'numbers: ["+15550002002"]',
            'numbers: ["+1 555"]',
            "vm.yaml:26: mailboxes.202.numbers[0]: '+1 555' is not an E.164 number",
        ),
        (
            'numbers: ["+15550002002"]',
            'numbers: ["+15550002001"]',
            "vm.yaml:26: mailboxes.202.numbers[0]: +15550002001 already reaches mailbox 201",
        ),
        (
            'members: ["201", "202"]',
            'members: ["201", "299"]',
            "vm.yaml:29: mailboxes.300.members[1]: unknown mailbox '299'",
        ),
        (
            "${ANNA_IMAP_PASSWORD}",
            "${NOPE_NOT_SET}",
            "vm.yaml:19: mailboxes.201.imap_password: environment variable NOPE_NOT_SET is not set",
        ),
        (
            "auth_token_file: token.txt",
            "auth_token_file: missing.txt",
            "vm.yaml:8: twilio.auth_token_file: cannot read secret file",
        ),
        (
            "timezone: Europe/Berlin",
            "timezone: Mars/Olympus",
            "vm.yaml:13: defaults.timezone: 'Mars/Olympus' is not a known time zone",
        ),
        (
            "ring_seconds: 12",
            "ring_seconds: twelve",
            "vm.yaml:28: mailboxes.202.ring_seconds: 'twelve' must be int",
        ),
        ("security: starttls", "security: ssl", "vm.yaml:10: imap.security: must be tls, starttls or none"),
        (
            'api_base_url: "https://api.twilio.com"',
            'api_base_url: "http://evil.example.com"',
            "vm.yaml:9: twilio.api_base_url: must use https",
        ),
        ("    imap_user: juergen\n", "", "mailboxes.202.imap_user: is required"),
    ],
)
def test_each_mistake_names_file_line_and_key(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in GOOD
    found = problems(tmp_path, GOOD.replace(old, new))
    assert any(expected in p for p in found), found


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("security: starttls", "security: ssl").replace('["+15550002002"]', '["123"]')
    assert len(problems(tmp_path, text)) == 2


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("  listen:", "  listen: [", 1))
    assert len(found) == 1 and found[0].startswith("vm.yaml:") and "YAML syntax error" in found[0]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_key_check_problems_are_reported_with_line(tmp_path: Path) -> None:
    text = GOOD.replace(
        '    forward_to: "+15550009999"',
        '    forward_to: "+15550009999"\n    gpg_recipients: [AAAABBBBCCCCDDDDEEEEFFFF0000111122223333]',
    )

    def check(config: object) -> list[tuple[str, str]]:
        return [("mailboxes.201.gpg_recipients[0]", "key AAAA…: not in keyring")]

    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), check_keys=check)  # type: ignore[arg-type]
    assert info.value.problems == ["vm.yaml:22: mailboxes.201.gpg_recipients[0]: key AAAA…: not in keyring"]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            '"https://vm.example.com/"',
            '"http://[::1"',
            "vm.yaml:3: server.public_url: 'http://[::1' is not a valid URL: Invalid IPv6 URL",
        ),
        (
            '"https://api.twilio.com"',
            '"https://api.twilio.com:99999"',
            "vm.yaml:9: twilio.api_base_url: 'https://api.twilio.com:99999' is not a valid URL",
        ),
        (
            "ring_seconds: 12",
            "ring_seconds: !!int ten",
            "vm.yaml:28: mailboxes.202.ring_seconds: 'ten' cannot be read as tag:yaml.org,2002:int",
        ),
        (
            "imap_user: juergen",
            "imap_user: !vault juergen",
            "vm.yaml:24: mailboxes.202.imap_user: could not determine a constructor for the tag '!vault'",
        ),
        (
            '  "300":',
            '  "201": {name: Other, numbers: ["+15550004000"]}\n  "300":',
            "vm.yaml:29: mailboxes.201: given twice (first at line 15); keys must be unique",
        ),
        (
            "    language: de-DE",
            "    language: de-DE\n    language: en-US",
            "vm.yaml:28: mailboxes.202.language: given twice (first at line 27)",
        ),
    ],
)
def test_bad_yaml_values_name_file_line_and_key(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in GOOD
    found = problems(tmp_path, GOOD.replace(old, new, 1))
    assert any(p.startswith(expected) for p in found), found


def test_invalid_utf8_and_control_characters_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    raw = path.read_bytes().replace("Jürgen".encode(), "J\xfcrgen".encode("latin-1"))
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == ["vm.yaml:23: not valid UTF-8 (byte 0xfc); save as UTF-8"]
    path.write_text(GOOD.replace("Jürgen", "J\x07rgen"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    [problem] = info.value.problems
    assert problem.startswith("vm.yaml:23: YAML syntax error:"), problem


def test_aliases_that_expand_without_end_are_refused(tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
    )
    assert "aliases expand without end" in problems(tmp_path, bomb)[0]
    assert "aliases expand without end" in problems(tmp_path, "a: &a [*a]\n")[0]


def test_country_private_and_the_deprecated_private_subject(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = GOOD.replace("timezone: Europe/Berlin}", "timezone: Europe/Berlin, country: de, private: true}")
    text = text.replace(
        "    ring_seconds: 12\n", "    ring_seconds: 12\n    country: AT\n    private: false\n"
    )
    config = load_config(write(tmp_path, text))
    anna, juergen = config.mailboxes["201"], config.mailboxes["202"]
    assert (anna.country, anna.private) == ("DE", True)
    assert (juergen.country, juergen.private) == ("AT", False)

    legacy = GOOD.replace("    ring_seconds: 12\n", "    ring_seconds: 12\n    private_subject: true\n")
    with caplog.at_level("WARNING"):
        assert load_config(write(tmp_path, legacy)).mailboxes["202"].private is True
    assert "vm.yaml:29: mailboxes.202.private_subject: deprecated, use `private: true`" in caplog.text

    bad = GOOD.replace("timezone: Europe/Berlin}", "timezone: Europe/Berlin, country: Germany}")
    assert any(
        "defaults.country: 'Germany' is not an ISO 3166 country code" in p for p in problems(tmp_path, bad)
    )
    national = GOOD.replace('numbers: ["+15550002001"]', 'numbers: ["030123456"]')
    assert any("'030123456' is not an E.164 number" in p for p in problems(tmp_path, national))
