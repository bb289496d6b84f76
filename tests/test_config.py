"""Configuration: validated TOML, one-line errors naming file and key."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest import config
from digest.config import checks as config_checks
from digest.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "digest.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_apply_when_sections_are_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DIGEST_STORAGE_URL", raising=False)  # set by a PostgreSQL test run
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
            '[daemon]\nlock_wait = "30s"\nhttp = "[::1]:9108"\n[web]\nconfirm_ttl = "2d"\n',
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
    assert shown["schedule"] == {
        "fetch": "0 * * * *",
        "send": "*/2 * * * * *",
        "catch_up": "90m",
        "prune": "30 3 * * *",
    }
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


# --------------------------------------------------------------------------- fails later: fails now


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[delivery]\nfrom = "not an address"', "delivery.from: 'not an address' is not an email"),
        ('[delivery]\nfrom = "Digest <>"', "delivery.from: 'Digest <>' is not an email"),
        ('[delivery]\nfrom = "a@x.org, b@x.org"', "delivery.from: 'a@x.org, b@x.org' is not an"),
        (
            '[delivery]\nfrom = "josé@example.org"',
            "delivery.from: 'josé@example.org' is not a usable",
        ),
        (
            '[delivery]\nreply_to = "a@example.org\\r\\nBcc: x@evil.example"',
            "delivery.reply_to: 'a@example.org\\r\\nBcc: x@evil.example' holds a control",
        ),
        ('[delivery]\nsubject = "{title.__class__.__mro__}"', "not {title.__class__.__mro__}"),
        ('[delivery]\nsubject = "{title[0]}"', "not {title[0]}"),
        ('[delivery]\nsubject = "{number:{title.__class__}}"', "only a plain format spec"),
        ('[delivery]\nsubject = "{title!r}"', "only a plain format spec"),
        # A gigabyte of padding per message: a MemoryError traceback at load before.
        ('[delivery]\nsubject = "{number:>1000000000000}"', "a width or precision over 100"),
        ('[delivery]\nsubject = "{title:.99999999}"', "a width or precision over 100"),
        ('[delivery]\nsubject = "Issue\\n{number}"', "delivery.subject: 'Issue\\n{number}' holds"),
        ('[delivery]\nlist_id = "x\\r\\nBcc: y"', "delivery.list_id: expected a domain"),
        ('[digest]\ntitle = "News\\r\\nBcc: x@evil.example"', "digest.title: 'News\\r\\nBcc"),
        (
            '[digest]\nbase_url = "https://x.example\\r\\nBcc: y"',
            "digest.base_url: expected an http(s) URL",
        ),
        ('[digest]\nbase_url = "https://x.example/a b"', "digest.base_url: expected an http(s)"),
        ('[digest]\nbase_url = "https://bücher.example"', "digest.base_url: 'https://bücher.exa"),
        ('[web]\nconfirm_ttl = "forever"', "web.confirm_ttl: expected a duration like"),
        ('[web]\nconfirm_ttl = "0s"', "web.confirm_ttl: expected a positive duration"),
        ("[web]\nconfirm_ttl = true", "web.confirm_ttl: expected a string"),
        ('[schedule]\ncatch_up = "soon"', "schedule.catch_up: expected a duration like"),
        ('[daemon]\nlock_wait = "-5s"', "daemon.lock_wait: expected a duration like"),
        # `digest run` refused these when it started; `check` passed them.
        ('[daemon]\nhttp = "127.0.0.1:99999"', "daemon.http: expected host:port (port 0-65535)"),
        ('[daemon]\nhttp = "localhost"', "daemon.http: expected host:port"),
        ('[daemon]\nhttp = "127.0.0.1:80x"', "daemon.http: expected host:port"),
    ],
)
def test_values_that_would_fail_later_are_refused_at_load(
    tmp_path: Path, toml: str, expected: str
) -> None:
    path = write(tmp_path, toml)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert str(info.value).startswith(f"{path}: ")
    assert expected in str(info.value)


def test_valid_addresses_and_subject_formats_pass(tmp_path: Path) -> None:
    s = config.load(
        write(
            tmp_path,
            '[delivery]\nfrom = "Veille Numérique <veille@news.example.org>"\n'
            'reply_to = "Rédaction <rédaction@news.example.org>"\n'
            'subject = "{title} n°{number:03d} — {date}"\nlist_id = "news.example.org"\n',
        )
    )
    assert s.delivery.from_ == "Veille Numérique <veille@news.example.org>"


@given(st.text(max_size=30))
def test_any_subject_format_either_loads_and_formats_or_is_one_config_error(fmt: str) -> None:
    try:
        s = config.parse_settings({"delivery": {"subject": fmt}}, "t.toml")
    except ConfigError as exc:
        message = str(exc)
        s = None
    if s is None:
        assert message.startswith("t.toml: delivery.subject")
        return
    out = s.delivery.subject.format(title="T", number=1, date="D")
    assert "\n" not in out
    assert "\r" not in out


def _findings(env: dict[str, str], **smtp: object) -> config_checks.Findings:
    data: dict[str, object] = {"delivery": {"mode": "smtp"}, "smtp": smtp} if smtp else {}
    return config_checks.environment_findings(config.parse_settings(data, "t.toml"), env)


def test_check_refuses_a_secret_too_short_and_warns_on_a_short_one() -> None:
    one = _findings({"DIGEST_SECRET": "x"})
    assert one.errors
    assert "DIGEST_SECRET is 1 byte(s) long: at least 16 are required" in one.errors[0]
    short = _findings({"DIGEST_SECRET": "x" * 20})
    assert short.errors == []
    assert "DIGEST_SECRET is 20 bytes long: 32 or more advised" in short.warnings
    good = _findings({"DIGEST_SECRET": "x" * 43})
    assert (good.errors, good.warnings) == ([], [])
    prev = _findings({"DIGEST_SECRET": "x" * 43, "DIGEST_SECRET_PREVIOUS": "y"})
    assert "DIGEST_SECRET_PREVIOUS is 1 byte(s) long" in prev.errors[0]
    same = _findings({"DIGEST_SECRET": "x" * 43, "DIGEST_SECRET_PREVIOUS": "x" * 43})
    assert "has no effect" in same.warnings[0]
    unset = _findings({})
    assert unset.errors == []
    assert "DIGEST_SECRET is not set" in unset.warnings[0]


def test_check_warns_when_credentials_would_cross_the_network_in_clear_text() -> None:
    env = {"DIGEST_SECRET": "x" * 43, "DIGEST_SMTP_PASSWORD": "pw"}
    clear = _findings(env, host="relay.example.org", security="none", username="u")
    assert any("in clear text" in w for w in clear.warnings)
    local = _findings(env, host="127.0.0.1", security="none", username="u")
    assert not any("in clear text" in w for w in local.warnings)
    tls = _findings(env, host="relay.example.org", security="starttls", username="u")
    assert tls.warnings == []
    nopass = _findings({"DIGEST_SECRET": "x" * 43}, host="relay.example.org", username="u")
    assert any("$DIGEST_SMTP_PASSWORD is not set" in w for w in nopass.warnings)


def test_digest_check_exits_2_on_a_one_character_secret_and_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import run_cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGEST_SECRET", "x")
    path = write(tmp_path, '[storage]\nurl = "sqlite:///d.db"\n')
    result = run_cli(capsys, "--config", str(path), "check")
    assert result.code == 2
    assert "error: DIGEST_SECRET is 1 byte(s) long" in result.err
    assert "Traceback" not in result.err
    monkeypatch.setenv("DIGEST_SECRET", "x" * 43)
    assert run_cli(capsys, "--config", str(path), "check").code == 0


def test_digest_check_names_the_key_of_a_header_injection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import run_cli

    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, '[delivery]\nreply_to = "a@example.org\\r\\nBcc: x@evil.example"\n')
    result = run_cli(capsys, "--config", str(path), "check")
    assert result.code == 2
    assert f"{path}: delivery.reply_to:" in result.err


def test_check_refuses_an_unloadable_ca_file_and_an_outbox_it_cannot_write(tmp_path: Path) -> None:
    env = {"DIGEST_SECRET": "x" * 43}
    bad_ca = tmp_path / "ca.pem"
    bad_ca.write_text("not a certificate", encoding="utf-8")
    smtp = config.parse_settings(
        {"delivery": {"mode": "smtp"}, "smtp": {"ca_file": str(bad_ca)}}, "t.toml"
    )
    assert any(
        e.startswith("smtp.ca_file: cannot load")
        for e in config_checks.environment_findings(smtp, env).errors
    )
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    outbox = config.parse_settings({"delivery": {"outbox_dir": str(blocker / "out")}}, "t.toml")
    assert config_checks.environment_findings(outbox, env).errors == [
        f"delivery.outbox_dir: {blocker} is not a folder"
    ]
    fine = config.parse_settings({"delivery": {"outbox_dir": str(tmp_path / "a" / "b")}}, "t.toml")
    assert config_checks.environment_findings(fine, env).errors == []
    assert not (tmp_path / "a").exists()  # check creates nothing


def test_check_warns_when_the_word_form_cache_cannot_be_written(tmp_path: Path) -> None:
    env = {"DIGEST_SECRET": "x" * 43}
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    blocked = config.parse_settings({"storage": {"cache_dir": str(blocker / "c")}}, "t.toml")
    found = config_checks.environment_findings(blocked, env)
    assert found.errors == []
    assert f"storage.cache_dir: {blocker} is not a folder: the topics' word forms go uncached" in (
        found.warnings
    )


def test_digest_check_refuses_an_unreadable_dkim_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import run_cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGEST_SECRET", "x" * 43)
    path = write(
        tmp_path,
        '[storage]\nurl = "sqlite:///d.db"\n'
        '[dkim]\nselector = "s"\ndomain = "example.org"\nkey_file = "missing.pem"\n',
    )
    result = run_cli(capsys, "--config", str(path), "check")
    assert result.code == 2
    assert "error: dkim.key_file: cannot read missing.pem" in result.err
