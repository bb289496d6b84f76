"""`digest status` and `digest feeds list/import/export`, through the real CLI entry point."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import run_cli
from digest import config
from digest.cli.app import out as stdout_console
from digest.models import FeedSpec, FetchResult, FetchStatus, IssueContent
from digest.reader.opml import parse_opml
from digest.store import open_store, schema
from digest.store.feeds import record_fetch, sync_feeds
from digest.store.issues import save_issue
from digest.store.locks import exclusive

Run = Callable[..., tuple[int, str, str]]

CONFIG = """\
# Editors: this comment and the layout below must survive an import.
[digest]
title = "Veille"

[storage]
url = "sqlite:///var/digest.db"

[[feeds]]
url = "https://www.cnil.fr/fr/rss.xml"
name = "CNIL"

[[feeds]]
url = "http://127.0.0.1:9/broken.xml"
name = "Broken"
"""


@pytest.fixture
def cfg(workdir: Path) -> Path:
    path = workdir / "digest.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


@pytest.fixture
def run(cfg: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    # A wide terminal, so table cells are not wrapped mid-phrase.
    monkeypatch.setattr(stdout_console, "_width", 200)

    def _run(*args: str) -> tuple[int, str, str]:
        return run_cli(capsys, "--config", str(cfg), *args)

    return _run


def record_failure(cfg: Path, now: datetime) -> None:
    store = open_store("sqlite:///var/digest.db")
    with store.begin() as conn:
        states = sync_feeds(
            conn,
            [
                FeedSpec("https://www.cnil.fr/fr/rss.xml", "CNIL"),
                FeedSpec("http://127.0.0.1:9/broken.xml", "Broken"),
            ],
            now=now,
        )
        ok = FetchResult(url=states[0].url, status=FetchStatus.NOT_MODIFIED, http_status=304)
        record_fetch(conn, states[0].id, ok, now)
        failed = FetchResult(
            url=states[1].url, status=FetchStatus.FAILED, http_status=500, error="HTTP 500"
        )
        for _ in range(3):
            record_fetch(conn, states[1].id, failed, now)
    store.close()


def test_status_shows_a_failing_feeds_error_failures_and_next_try(cfg: Path, run: Run) -> None:
    now = datetime.now(UTC)
    record_failure(cfg, now)
    code, out, _ = run("status", "--json")
    assert code == 0
    doc = json.loads(out)
    cnil, broken = doc["feeds"]
    assert cnil["consecutive_failures"] == 0
    assert cnil["last_success"] is not None
    assert broken["name"] == "Broken"
    assert broken["last_error"] == "HTTP 500"
    assert broken["consecutive_failures"] == 3
    assert broken["last_success"] is None
    # Third failure in a row: 2^3 x 5 min backoff, +-10%.
    next_try = datetime.fromisoformat(broken["next_try"])
    assert now + timedelta(minutes=35) < next_try < now + timedelta(minutes=45)
    assert doc["daemon"] is None

    code, out, _ = run("status")
    assert code == 0
    assert "1 failing" in out
    assert "HTTP 500" in out
    assert re.search(r"│ in (3[5-9]|4[0-4])m ", out)  # the next try, 40 min +-10% away
    assert "Daemon: not running" in out


def test_status_lists_recent_issues_with_deliveries_by_state(cfg: Path, run: Run) -> None:
    now = datetime.now(UTC)
    store = open_store("sqlite:///var/digest.db")
    with store.begin() as conn:
        content = IssueContent(
            number=1,
            title="Veille",
            language="en",
            timezone="UTC",
            created=now,
            period_start=now - timedelta(days=7),
            period_end=now,
            sections=(),
        )
        issue_id = save_issue(conn, content, subject="Veille #1", html="<p>", text="t")
        for i, state in enumerate(["sent", "sent", "retry", "failed"]):
            sub = conn.execute(
                schema.subscribers.insert().values(
                    email=f"s{i}@example.org",
                    email_key=f"s{i}@example.org",
                    created=now,
                    token_key=f"k{i}",
                )
            ).inserted_primary_key[0]
            conn.execute(
                schema.deliveries.insert().values(
                    issue_id=issue_id,
                    subscriber_id=sub,
                    state=state,
                    message_id=f"<{i}@x>",
                    updated=now,
                )
            )
    code, out, _ = run("status", "--json")
    assert code == 0
    (issue,) = json.loads(out)["issues"]
    assert issue["number"] == 1
    assert issue["deliveries"] == {"sent": 2, "retry": 1, "failed": 1}
    code, out, _ = run("status")
    assert "1 failed, 1 retry, 2 sent" in out


def test_status_names_the_running_daemon(cfg: Path, run: Run) -> None:
    store = open_store("sqlite:///var/digest.db")
    with exclusive(store) as lease:
        code, out, _ = run("status", "--json")
    assert code == 0
    assert json.loads(out)["daemon"]["pid"] == lease.pid


OPML = """<?xml version="1.0"?>
<opml version="2.0"><body>
  <outline text="CNIL again" xmlUrl="HTTPS://www.cnil.fr/fr/rss.xml/"/>
  <outline text="Privacy">
    <outline text="EDPB &amp; news" xmlUrl="https://edpb.europa.eu/feed/news_en"/>
  </outline>
  <outline text='Say "hi"' xmlUrl="https://example.org/feed?a=1&amp;b=2"/>
</body></opml>
"""


def test_import_appends_new_feeds_to_the_config_file_and_says_so(
    cfg: Path, run: Run, workdir: Path
) -> None:
    (workdir / "subs.opml").write_text(OPML, encoding="utf-8")
    code, out, _ = run("feeds", "import", "subs.opml")
    assert code == 0
    assert f"added 2 feeds to {cfg} (1 already configured)" in out
    text = cfg.read_text(encoding="utf-8")
    assert text.startswith(CONFIG)
    assert "# Imported from subs.opml on " in text

    code, out, _ = run("feeds", "export")
    exported = [(o.url, o.title) for o in parse_opml(out.encode())]
    assert exported == [
        ("https://www.cnil.fr/fr/rss.xml", "CNIL"),
        ("http://127.0.0.1:9/broken.xml", "Broken"),
        ("https://edpb.europa.eu/feed/news_en", "EDPB & news"),
        ("https://example.org/feed?a=1&b=2", 'Say "hi"'),
    ]

    code, out, _ = run("feeds", "import", "subs.opml")
    assert code == 0
    assert "nothing to add" in out
    assert cfg.read_text(encoding="utf-8") == text


def test_import_dry_run_changes_nothing(cfg: Path, run: Run, workdir: Path) -> None:
    (workdir / "subs.opml").write_text(OPML, encoding="utf-8")
    code, out, _ = run("feeds", "import", "--dry-run", "subs.opml")
    assert code == 0
    assert "would add https://edpb.europa.eu/feed/news_en" in out
    assert cfg.read_text(encoding="utf-8") == CONFIG


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "subs.opml: cannot read"),
        ("<rss/>", "subs.opml: not an OPML file"),
        ('<!DOCTYPE x [<!ENTITY a "b">]><opml/>', "subs.opml: entity declarations"),
    ],
)
def test_a_bad_opml_file_exits_2_with_one_line_naming_it(
    run: Run, workdir: Path, cfg: Path, content: str | None, message: str
) -> None:
    if content is not None:
        (workdir / "subs.opml").write_text(content, encoding="utf-8")
    code, _, err = run("feeds", "import", "subs.opml")
    assert code == 2
    assert err.startswith(f"error: {message}")
    assert err.count("\n") == 1
    assert cfg.read_text(encoding="utf-8") == CONFIG


def test_export_writes_a_file(run: Run, workdir: Path) -> None:
    code, out, _ = run("feeds", "export", "feeds.opml")
    assert code == 0
    assert "wrote 2 feeds to feeds.opml" in out
    assert len(parse_opml((workdir / "feeds.opml").read_bytes())) == 2


def test_feeds_list_shows_configured_feeds(run: Run) -> None:
    code, out, _ = run("feeds", "list")
    assert code == 0
    assert "CNIL" in out
    assert "Broken" in out


def test_status_shows_names_and_errors_verbatim_and_a_disabled_feed(cfg: Path, run: Run) -> None:
    cfg.write_text(
        CONFIG.replace('name = "Broken"', 'name = "Broken [b]feed[/b]"'), encoding="utf-8"
    )
    now = datetime.now(UTC)
    store = open_store("sqlite:///var/digest.db")
    with store.begin() as conn:
        (state,) = sync_feeds(conn, [FeedSpec("http://127.0.0.1:9/broken.xml")], now=now)
        gone = FetchResult(
            url=state.url, status=FetchStatus.FAILED, http_status=410, error="[410] Gone", gone=True
        )
        record_fetch(conn, state.id, gone, now)
    store.close()
    code, out, _ = run("status")
    assert code == 0
    assert "Broken [b]feed[/b]" in out
    assert "[410] Gone" in out
    assert "(disabled: 410 Gone)" in out
    assert "never (disabled)" in out


FOLDERS = """<?xml version="1.0"?>
<opml version="2.0"><body>
  <outline text="CNIL again" xmlUrl="https://www.cnil.fr/fr/rss.xml"/>
  <outline text="sovereign cloud">
    <outline text="Cloud news" xmlUrl="https://cloud.example/feed.xml"/>
  </outline>
  <outline text="Weekend reading">
    <outline text="Essays" xmlUrl="https://essays.example/feed.xml" category="/Long reads,privacy"/>
  </outline>
</body></opml>
"""

TOPICS = """
[topics.sovereign_cloud]
title = "Sovereign cloud"
include = ["SecNumCloud"]

[topics.privacy]
title = "Data protection"
include = ["GDPR"]
"""


def test_import_offers_folders_naming_a_topic_as_its_topics_and_keeps_the_rest_as_labels(
    cfg: Path, run: Run, workdir: Path
) -> None:
    cfg.write_text(CONFIG + TOPICS, encoding="utf-8")
    (workdir / "subs.opml").write_text(FOLDERS, encoding="utf-8")
    code, out, _ = run("feeds", "import", "subs.opml")
    assert code == 0
    assert "skipped (already configured): https://www.cnil.fr/fr/rss.xml" in out
    assert "added 2 feeds" in out
    assert "2 with topics from their folders" in out
    feeds = {f.url: f for f in config.load(cfg).feeds}
    # A folder named like a topic's title (any case) or id becomes the feed's topic.
    assert feeds["https://cloud.example/feed.xml"].topics == ["sovereign_cloud"]
    assert feeds["https://cloud.example/feed.xml"].labels == []
    essays = feeds["https://essays.example/feed.xml"]
    assert essays.topics == ["privacy"]
    assert essays.labels == ["Weekend reading", "Long reads"]

    code, out, _ = run("feeds", "list")
    assert "Weekend reading, Long reads" in out
    code, out, _ = run("feeds", "export")
    exported = {o.url: o.categories for o in parse_opml(out.encode())}
    assert exported["https://essays.example/feed.xml"] == (
        "Weekend reading",
        "Long reads",
        "privacy",
    )


def test_a_feed_that_moved_is_exported_at_its_new_address_and_listed_with_the_entry_to_update(
    cfg: Path, run: Run
) -> None:
    now = datetime.now(UTC)
    store = open_store("sqlite:///var/digest.db")
    with store.begin() as conn:
        states = sync_feeds(conn, [FeedSpec("https://www.cnil.fr/fr/rss.xml", "CNIL")], now=now)
        moved = FetchResult(
            url=states[0].url,
            status=FetchStatus.NOT_MODIFIED,
            http_status=304,
            permanent_redirect="https://www.cnil.fr/feeds/all.xml",
        )
        record_fetch(conn, states[0].id, moved, now)
    store.close()

    code, out, _ = run("feeds", "export")
    assert code == 0
    urls = [o.url for o in parse_opml(out.encode())]
    assert urls == ["https://www.cnil.fr/feeds/all.xml", "http://127.0.0.1:9/broken.xml"]

    code, out, _ = run("feeds")  # `digest feeds` alone lists them
    assert code == 0
    assert "moved to https://www.cnil.fr/feeds/all.xml" in out
    assert "update the config: feeds[0] (CNIL) url = 'https://www.cnil.fr/feeds/all.xml'" in out


@pytest.mark.parametrize("number", ["99999999999999999999999", "2147483648", "0", "-1"])
def test_regression_deliveries_of_an_issue_number_too_large_for_the_database_is_one_line(
    run: Run, number: str
) -> None:
    # 99999999999999999999999 was an OverflowError traceback from the SQLite driver.
    code, _, err = run("deliveries", "--issue", number)
    assert code == 2
    assert err.strip().splitlines()[-1] == f"error: issue #{number} does not exist"
    assert "Traceback" not in err


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_regression_a_full_disk_under_stdout_is_one_line_and_exit_1(cfg: Path) -> None:
    # `digest feeds export > /dev/full` ended in an OSError traceback (ENOSPC).
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "digest", "--config", str(cfg), "feeds", "export"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == "error: [Errno 28] No space left on device"
