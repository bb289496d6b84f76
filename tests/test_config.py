"""Configuration: validated TOML, one-line errors naming file and key."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest import config
from digest.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "digest.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_apply_when_sections_are_missing(tmp_path: Path) -> None:
    s = config.load(write(tmp_path, ""))
    assert s.storage.url == "sqlite:///var/digest.db"
    assert s.schedule.fetch.text == "0 * * * *"
    assert s.schedule.send.text == "0 8 * * mon"
    assert s.delivery.mode == "outbox"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[topics.data_protection]\ntitle = "DP"\ninclude = "rgpd"',
            "topics.data_protection.include: expected a list of strings",
        ),
        ("[digest]\nbogus = 1", "digest.bogus: unknown key"),
        ('[digest]\nmax_items_per_topic = "x"', "digest.max_items_per_topic: expected an integer"),
        ('[schedule]\nsend = "61 * * * *"', "schedule.send: invalid crontab"),
        ('[digest]\ntimezone = "Mars/Base"', "digest.timezone: unknown IANA timezone"),
        (
            '[[feeds]]\nurl = "https://x/feed"\ntopics = ["nope"]',
            "feeds[0].topics: unknown topic 'nope'",
        ),
    ],
)
def test_invalid_config_names_file_and_key(tmp_path: Path, toml: str, expected: str) -> None:
    path = write(tmp_path, toml)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "nope.toml")


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        config.load(write(tmp_path, "[digest\n"))


def test_topics_can_live_in_an_included_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        '[topics.dp]\ntitle = "DP"\ninclude = ["rgpd", {term = "cnil", weight = 2}]',
        "topics.toml",
    )
    s = config.load(write(tmp_path, 'include = ["topics.toml"]\n[digest]\ntitle = "T"'))
    (topic,) = s.topic_defs()
    assert topic.id == "dp"
    assert [(t.text, t.weight) for t in topic.include] == [("rgpd", 1.0), ("cnil", 2.0)]


def test_config_path_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_CONFIG", "/etc/digest.toml")
    assert config.config_path() == Path("/etc/digest.toml")
    assert config.config_path("other.toml") == Path("other.toml")


def test_redacted_settings_never_show_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "hunter2")
    s = config.load(write(tmp_path, '[storage]\nurl = "postgresql://u:pw@db/digest"'))
    shown = repr(s.redacted())
    assert "hunter2" not in shown
    assert "pw@" not in shown
    assert "***" in shown


def test_durations_and_crontabs_are_parsed_once_at_load_and_shown_as_written(
    tmp_path: Path,
) -> None:
    s = config.load(
        write(
            tmp_path,
            '[schedule]\nsend = "*/2 * * * * *"\ncatch_up = "90m"\n'
            '[daemon]\nlock_wait = "30s"\n[web]\nconfirm_ttl = "2d"\n',
        )
    )
    assert s.schedule.send.fields[0] == ("second", "*/2")
    assert s.schedule.fetch.fields == (
        ("minute", "0"),
        ("hour", "*"),
        ("day", "*"),
        ("month", "*"),
        ("day_of_week", "*"),
    )
    assert s.schedule.catch_up_seconds == 5400
    assert s.daemon.lock_wait.seconds == 30
    assert s.web.confirm_ttl.delta == timedelta(days=2)
    shown = s.redacted()
    assert shown["schedule"] == {"fetch": "0 * * * *", "send": "*/2 * * * * *", "catch_up": "90m"}
    assert shown["web"]["confirm_ttl"] == "2d"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[web]\nconfirm_ttl = "two days"', "web.confirm_ttl: expected a duration like"),
        ('[daemon]\nlock_lease = "0s"', "daemon.lock_lease: expected a positive duration"),
        ("[schedule]\ncatch_up = 12", "schedule.catch_up: expected a string"),
        ('[schedule]\nfetch = "* * *"', "expected 5 fields (or 6, seconds first), got 3"),
    ],
)
def test_a_bad_duration_or_crontab_is_one_line_at_load(
    tmp_path: Path, toml: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        config.load(write(tmp_path, toml))


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from("smhdw"))
def test_a_duration_keeps_its_text_and_its_length(n: int, unit: str) -> None:
    d = config.Duration.parse(f"{n}{unit}")
    assert str(d) == f"{n}{unit}"
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    assert d.seconds == n * seconds
