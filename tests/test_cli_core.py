"""The everyday commands through the real entry point: exit codes, one-line errors, summaries."""

from __future__ import annotations

import resource
import threading
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from conftest import CLIResult, run_cli
from digest.store import open_store
from digest.store.issues import list_issues
from digest.store.locks import exclusive

FEED = """<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>
<title>Privacy news</title><link>https://news.example/</link><description>x</description>
<item><title>CNIL fines a retailer for GDPR breaches</title>
<link>https://news.example/cnil-fine</link><guid>cnil-fine</guid>
<description>The CNIL fined a retailer 2 million euros for keeping personal data too long.
Customers were never told how long their data was kept.</description></item>
<item><title>Football results</title><link>https://news.example/football</link>
<guid>football</guid><description>Paris won.</description></item>
</channel></rss>"""

#: The feed timeout where a test needs one feed to time out and the others to succeed.
FETCH_TIMEOUT = 3.0

CONFIG = """
[digest]
title = "CLI digest"

[storage]
url = "sqlite:///var/cli.db"

[delivery]
mode = "outbox"
outbox_dir = "outbox"

[fetch]
timeout = {timeout}
parse_workers = 1

{feeds}

[topics.data_protection]
title = "Data protection"
include = ["GDPR", "CNIL", "personal data"]
{examples}
"""


@pytest.fixture
def cli(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> object:
    monkeypatch.setenv("DIGEST_SECRET", "cli-test-secret-" + "x" * 20)

    def run(*args: str) -> CLIResult:
        return run_cli(capsys, *args)

    return run


def write_config(
    path: Path, feeds: list[str], *, timeout: float = 20.0, examples: str = ""
) -> Path:
    # The feeds are served on 127.0.0.1: allowed as an intranet feed would be.
    blocks = "\n".join(
        f'[[feeds]]\nurl = "{u}"\nname = "Feed {i}"\nallow_private = true\n'
        for i, u in enumerate(feeds)
    )
    path.write_text(
        CONFIG.format(feeds=blocks, timeout=timeout, examples=examples), encoding="utf-8"
    )
    return path


def errors(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------------- config errors


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[digest]\ntitel = "x"\n', "digest.toml: digest.titel: unknown key"),
        ('[digest]\nwindow_days = "seven"\n', "digest.toml: digest.window_days: expected"),
        ('[schedule]\nsend = "61 8 * * mon"\n', "digest.toml: schedule.send: invalid crontab"),
        ('[delivery]\nmode = "pigeon"\n', "digest.toml: delivery.mode: expected"),
    ],
)
def test_a_broken_config_exits_2_with_one_line_naming_file_and_key(
    cli, workdir: Path, toml: str, expected: str
) -> None:
    (workdir / "digest.toml").write_text(toml, encoding="utf-8")
    for command in (["check"], ["fetch"], ["send"], ["run", "--once"], ["preview"]):
        r = cli("--config", "digest.toml", *command)
        assert r.code == 2, command
        [line] = errors(r.err)
        assert expected in line
        assert "Traceback" not in r.err


def test_a_missing_config_file_exits_2_naming_it(cli) -> None:
    r = cli("--config", "nowhere.toml", "check")
    assert r.code == 2
    [line] = errors(r.err)
    assert "nowhere.toml" in line
    assert "not found" in line


def test_every_command_has_help_with_an_example(cli) -> None:
    for command in ("fetch", "preview", "send", "run", "check"):
        r = cli(command, "--help")
        assert r.code == 0, command
        assert "Example:" in r.out, command


# --------------------------------------------------------------------------- fetch


def test_fetch_summarizes_in_one_line_and_lists_failing_feeds(cli, workdir: Path) -> None:
    httpserver = HTTPServer(host="127.0.0.1", threaded=True)  # the slow feed must not block
    httpserver.start()
    released = threading.Event()

    def slow(_: Request) -> Response:
        # Answers only once the test is over: late whatever the machine's load.
        released.wait(60)
        return Response(FEED, content_type="application/rss+xml")

    httpserver.expect_request("/ok.xml").respond_with_data(FEED, content_type="application/rss+xml")
    httpserver.expect_request("/500.xml").respond_with_data("no", status=500)
    httpserver.expect_request("/slow.xml").respond_with_handler(slow)
    write_config(
        workdir / "digest.toml",
        [httpserver.url_for(p) for p in ("/ok.xml", "/500.xml", "/slow.xml")],
        # Long enough for the two quick feeds on a loaded CI machine: a 0.3 s budget made them
        # time out too now and then.
        timeout=FETCH_TIMEOUT,
    )
    try:
        r = cli("--config", "digest.toml", "fetch")
    finally:
        released.set()
        httpserver.clear()
        httpserver.stop()
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].startswith("feeds: 1 ok, 2 failed, 0 not modified; items: 2 new;")
    assert "data_protection 1" in lines[0]
    failed = "\n".join(lines[1:])
    assert "/500.xml: HTTP 500" in failed
    assert "/slow.xml" in failed
    assert "timed out" in failed


def test_fetch_exits_1_when_every_feed_fetched_failed(
    cli, workdir: Path, httpserver: HTTPServer
) -> None:
    """One dead feed among live ones is the feed's problem (exit 0, above); all of them dead
    is the machine's (network, DNS): cron or a timer unit must see it."""
    httpserver.expect_request("/500.xml").respond_with_data("no", status=500)
    httpserver.expect_request("/404.xml").respond_with_data("no", status=404)
    write_config(workdir / "digest.toml", [httpserver.url_for(p) for p in ("/500.xml", "/404.xml")])
    r = cli("--config", "digest.toml", "fetch")
    assert r.code == 1
    assert r.out.splitlines()[0].startswith("feeds: 0 ok, 2 failed")
    assert errors(r.err)[-1] == "error: all 2 feeds failed: check this machine's network and DNS"
    # The next run: every feed backing off, none fetched, nothing failed anew.
    again = cli("--config", "digest.toml", "fetch")
    assert again.code == 0, again.err
    assert again.out.splitlines()[0].startswith("feeds: 0 ok, 0 failed")


# --------------------------------------------------------------------------- preview / send


@pytest.fixture
def fetched(cli, workdir: Path, httpserver: HTTPServer) -> Path:
    httpserver.expect_request("/ok.xml").respond_with_data(FEED, content_type="application/rss+xml")
    config = write_config(workdir / "digest.toml", [httpserver.url_for("/ok.xml")])
    assert cli("--config", str(config), "fetch").code == 0
    return config


def test_preview_renders_the_next_issue_and_records_nothing(cli, fetched: Path) -> None:
    r = cli("--config", str(fetched), "preview", "--out", "next.html")
    assert r.code == 0, r.err
    html = Path("next.html").read_text(encoding="utf-8")
    assert "CNIL fines a retailer for GDPR breaches" in html
    assert "Football" not in html
    text = cli("--config", str(fetched), "preview", "--text")
    assert "CNIL fines a retailer for GDPR breaches" in text.out
    assert "<" not in text.out.split("CNIL", 1)[0]
    with open_store("sqlite:///var/cli.db").connect() as conn:
        assert list_issues(conn) == []
    assert not Path("outbox").exists()


def test_send_dry_run_stores_and_sends_nothing(cli, fetched: Path) -> None:
    r = cli("--config", str(fetched), "send", "--dry-run")
    assert r.code == 0, r.err
    assert "dry run: issue #1 would be sent to 0 active subscriber(s)" in r.out
    with open_store("sqlite:///var/cli.db").connect() as conn:
        assert list_issues(conn) == []


def test_send_with_nothing_new_says_so(cli, fetched: Path) -> None:
    first = cli("--config", str(fetched), "send")
    assert first.code == 0, first.err
    assert "issue #1: outbox/1/index.html" in first.out
    second = cli("--config", str(fetched), "send")
    assert second.code == 0
    assert "no new items: nothing sent" in second.out


def test_send_without_a_secret_exits_2_before_building_an_issue(
    cli, fetched: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DIGEST_SECRET")
    r = cli("--config", str(fetched), "send")
    assert r.code == 2
    assert "DIGEST_SECRET" in r.err
    with open_store("sqlite:///var/cli.db").connect() as conn:
        assert list_issues(conn) == []


def test_send_while_another_digest_holds_the_database_exits_2_naming_it(cli, fetched: Path) -> None:
    store = open_store("sqlite:///var/cli.db")
    with exclusive(store):
        r = cli("--config", str(fetched), "send")
    assert r.code == 2
    [line] = errors(r.err)
    assert "in use by" in line
    assert "pid" in line


# --------------------------------------------------------------------------- check


def test_check_lists_feeds_topics_and_subscribers(cli, fetched: Path) -> None:
    r = cli("--config", str(fetched), "check")
    assert r.code == 0, r.err
    assert "feeds (1):" in r.out
    assert "data_protection: Data protection" in r.out
    assert "subscribers: none" in r.out


def test_check_warns_when_the_open_files_limit_cannot_hold_the_fetch_concurrency(
    cli, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fetch raises its soft limit up to the hard one, not past it: check says so first."""
    (workdir / "digest.toml").write_text("[fetch]\nconcurrency = 1000\n", encoding="utf-8")
    monkeypatch.setattr(resource, "getrlimit", lambda _: (256, 512))
    r = cli("--config", "digest.toml", "check")
    assert r.code == 0, r.err
    assert (
        "warning: fetch.concurrency = 1000 needs about 1128 open files; this user's hard limit "
        "is 512: raise it (systemd: LimitNOFILE=) or lower concurrency"
    ) in errors(r.err)
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 4096))
    assert "LimitNOFILE" not in cli("--config", "digest.toml", "check").err


def test_check_exits_2_listing_each_example_that_no_longer_holds(cli, workdir: Path) -> None:
    examples = """
[[topics.data_protection.examples]]
title = "CNIL fines a bank under the GDPR"
expect = true

[[topics.data_protection.examples]]
title = "Football results"
expect = true

[[topics.data_protection.examples]]
title = "GDPR: the CNIL publishes its annual report"
expect = false
"""
    config = write_config(workdir / "digest.toml", [], examples=examples)
    r = cli("--config", str(config), "check")
    assert r.code == 2
    lines = errors(r.err)
    assert len(lines) == 2
    assert "'Football results' should be kept" in lines[0]
    assert "should be dropped" in lines[1]


def test_run_once_fetches_then_sends_and_prints_the_issue_path(cli, workdir: Path) -> None:
    server = HTTPServer(host="127.0.0.1")
    server.start()
    try:
        server.expect_request("/ok.xml").respond_with_data(FEED, content_type="application/rss+xml")
        config = write_config(workdir / "digest.toml", [server.url_for("/ok.xml")])
        r = cli("--config", str(config), "run", "--once")
    finally:
        server.clear()
        server.stop()
    assert r.code == 0, r.err
    assert "issue #1: outbox/1/index.html" in r.out
    assert "feeds 1 ok, 0 failed" in r.err  # the end-to-end counts line
    assert Path("outbox/1/index.html").is_file()


def test_dry_run_without_once_is_a_usage_error(cli) -> None:
    r = cli("run", "--dry-run")
    assert r.code == 2
    assert "--dry-run only goes with --once" in r.err


def test_preview_with_nothing_new_says_so_and_succeeds(cli, workdir: Path) -> None:
    config = write_config(workdir / "digest.toml", [])
    r = cli("--config", str(config), "preview")
    assert r.code == 0
    assert "no new items: nothing to preview" in r.err
