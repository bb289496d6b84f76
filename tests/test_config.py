"""Configuration: validated TOML, one-line errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest import config
from digest.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "digest.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_apply_when_sections_are_missing(tmp_path: Path) -> None:
    s = config.load(write(tmp_path, ""))
    assert s.storage.url == "sqlite:///var/digest.db"
    assert s.schedule.fetch == "0 * * * *"
    assert s.schedule.send == "0 8 * * mon"
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
