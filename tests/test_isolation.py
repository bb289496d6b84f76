"""Issue 10: one bad feed, item or term never stops the rest. Each reproduction from the issue as
a named regression test, against real local feeds (pytest-httpserver) and the real store."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select, text
from werkzeug import Request, Response

from conftest import run_cli
from digest.config import parse_settings
from digest.models import FetchRequest, FetchStatus, Item, Summary
from digest.pipeline.collect import collect
from digest.pipeline.issue import build_issue, send
from digest.pipeline.summaries import summarize_items
from digest.store import open_store, schema
from digest.store.items import insert_items, iter_items, load_summaries, save_summary
from digest.store.subscribers import add_subscriber
from digest.summarize.fulltext import FullTextRequest, fetch_full_texts
from test_pipeline import NOW, TOPICS, settings_for

INVALID_LINKS = ("http://1.2.3.04/a", "http://0177.0.0.1/", "http://[v1.x]/")
ON_TOPIC = "SecNumCloud: the ministry moves its workloads to a sovereign cloud"


def feed(
    items: list[tuple[str, str, str]], *, extra: str = "", lang: str = "en", desc: str = "Read more"
) -> str:
    """An RSS document; items are (guid, link, title)."""
    body = "".join(
        f"<item><title>{t}</title><link>{link}</link><guid isPermaLink='false'>{g}</guid>"
        f"<pubDate>{format_datetime(NOW - timedelta(hours=2))}</pubDate>"
        f"<description>{desc}</description></item>"
        for g, link, t in items
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>Feed</title><link>https://news.example/</link><language>{lang}</language>"
        f"<description>x</description>{extra}{body}</channel></rss>"
    )


ARTICLE = (
    "<html><body><article><h1>SecNumCloud</h1>"
    "<p>The ministry of health will move its most sensitive workloads to a provider qualified "
    "SecNumCloud by ANSSI, the national cybersecurity agency, by next summer.</p>"
    "<p>The migration covers patient records and payroll, hosted today by an American cloud "
    "provider under a contract that ends in June, officials said on Monday.</p>"
    "</article></body></html>"
)


# --------------------------------------------------------------------------- 1: invalid links


def test_regression_issue10_1_items_with_invalid_links_are_recorded_and_the_issue_still_goes_out(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: `digest send` died with httpx.InvalidURL on every run until the items aged out.
    monkeypatch.setenv("DIGEST_SECRET", "test-secret-" + "x" * 20)
    httpserver.expect_request("/article").respond_with_data(ARTICLE, content_type="text/html")
    items = [(f"bad{i}", link, f"{ON_TOPIC} ({i})") for i, link in enumerate(INVALID_LINKS)]
    items.append(("good", httpserver.url_for("/article"), ON_TOPIC + " today"))
    httpserver.expect_request("/teasers.xml").respond_with_data(
        feed(items), content_type="application/rss+xml"
    )
    settings = settings_for(
        tmp_path, [{"url": httpserver.url_for("/teasers.xml"), "full_text": True}]
    )
    store = open_store(settings.storage.url)
    with store.begin() as conn:
        add_subscriber(conn, "ann@example.org")

    counts = collect(settings, store)
    assert (counts.feeds_ok, counts.items_new, counts.items_failed) == (1, 4, 3)
    assert all("invalid link" in reason for _, reason in counts.item_failures)
    sent = send(settings, store)
    assert (sent.issue_number, sent.sent, sent.failed) == (1, 1, 0)
    with store.connect() as conn:
        rows = conn.execute(
            select(schema.items.c.guid, schema.items.c.failures, schema.items.c.last_error)
        ).all()
    errors = {r.guid: r.last_error for r in rows}
    assert errors["good"] is None
    assert "invalid IPv4 address 1.2.3.04" in errors["bad0"]
    assert "invalid IPv4 address 0177.0.0.1" in errors["bad1"]
    assert "invalid IPv6 address" in errors["bad2"]
    # The next run does not meet them again as failures: they were counted once.
    assert send(settings, store).items_failed == 0


@pytest.mark.parametrize("url", [*INVALID_LINKS, "http://[::1", "http://x:99999/"])
def test_regression_issue10_1_the_full_text_fetcher_returns_an_invalid_url_as_a_value(
    url: str,
) -> None:
    # An item stored before the fix still has such a link: a value, never an exception.
    got = asyncio.run(fetch_full_texts([FullTextRequest(url)]))
    assert "invalid" in str(got[url]).lower()


def test_regression_issue10_1_summarize_an_invalid_url_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], workdir: Path
) -> None:
    result = run_cli(capsys, "summarize", "http://1.2.3.04/")
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        "error: http://1.2.3.04/: not a URL that can be fetched: invalid IPv4 address 1.2.3.04"
    ]
    assert "Traceback" not in result.err


# --------------------------------------------------------------------------- 4: hostile scale


def test_regression_issue10_4_a_feed_contributes_at_most_max_items_per_feed_newest_first(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    base = datetime(2026, 11, 1, tzinfo=UTC)
    body = "".join(
        f"<item><title>Cloud souverain numéro {n} SecNumCloud</title>"
        f"<link>https://flood.example/{n}</link>"
        f"<pubDate>{format_datetime(base + timedelta(minutes=n))}</pubDate></item>"
        for n in range(500)
    )
    httpserver.expect_request("/flood.xml").respond_with_data(
        f"<rss version='2.0'><channel><title>Flood</title>{body}</channel></rss>",
        content_type="application/rss+xml",
    )
    settings = settings_for(
        tmp_path, [{"url": httpserver.url_for("/flood.xml")}], fetch={"max_items_per_feed": 50}
    )
    store = open_store(settings.storage.url)
    counts = collect(settings, store)
    assert (counts.items_new, counts.items_over_cap) == (50, 450)
    with store.connect() as conn:
        titles = {s.item.title for s in iter_items(conn)}
    assert titles == {f"Cloud souverain numéro {n} SecNumCloud" for n in range(450, 500)}


def test_regression_issue10_4_an_issue_from_thousands_of_near_identical_items_takes_the_best(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    # Before: story grouping compared every item with every group (63 s for 20,000 items).
    flood = "".join(
        f"<item><title>Cloud souverain numéro {n} SecNumCloud</title>"
        f"<link>https://flood.example/{n}</link>"
        f"<pubDate>{format_datetime(NOW - timedelta(minutes=n + 10))}</pubDate></item>"
        for n in range(3000)
    )
    httpserver.expect_request("/flood.xml").respond_with_data(
        f"<rss version='2.0'><channel><title>Flood</title>{flood}</channel></rss>",
        content_type="application/rss+xml",
    )
    httpserver.expect_request("/good.xml").respond_with_data(
        feed(
            [("g", "https://good.example/1", "CNIL fines a retailer over GDPR and personal data")]
        ),
        content_type="application/rss+xml",
    )
    settings = settings_for(
        tmp_path,
        [{"url": httpserver.url_for("/flood.xml")}, {"url": httpserver.url_for("/good.xml")}],
        fetch={"max_items_per_feed": 5000},
        digest={"max_items_per_topic": 5},
    )
    store = open_store(settings.storage.url)
    assert collect(settings, store).items_new == 3001
    content = build_issue(settings, store, record=False)
    assert content is not None
    by_topic = {s.topic_id: [e.title for e in s.entries] for s in content.sections}
    assert len(by_topic["sovereign_cloud"]) == 5
    assert by_topic["data_protection"] == ["CNIL fines a retailer over GDPR and personal data"]


# --------------------------------------------------------------------------- 5: unstorable text


def test_regression_issue10_5_outside_text_is_cleaned_and_bounded_before_the_store(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    # Before: on PostgreSQL a <language> over 16 characters or a NUL aborted the whole fetch.
    long_lang = "en-us-x-" + "abcdefgh-" * 4 + "z"
    doc = feed(
        [("n", "https://news.example/n", "SecNumCloud &#0;and the\x01 sovereign cloud")],
        lang=long_lang,
    )
    httpserver.expect_request("/odd.xml").respond_with_data(
        doc.encode(), content_type="application/rss+xml"
    )
    settings = settings_for(tmp_path, [{"url": httpserver.url_for("/odd.xml")}])
    store = open_store(settings.storage.url)
    counts = collect(settings, store)
    assert (counts.feeds_ok, counts.items_new, counts.items_failed) == (1, 1, 0)
    with store.connect() as conn:
        [stored] = list(iter_items(conn))
    assert stored.item.title == "SecNumCloud and the sovereign cloud"
    assert stored.item.language == "en"
    model = "m" * 69  # a 69-character model name: the engine column holds 64
    with store.begin() as conn:
        save_summary(
            conn,
            stored.id,
            Summary(text="A summary\x00.", language=long_lang, engine=f"llm:{model}"),
            now=NOW,
        )
    with store.connect() as conn:
        summary = load_summaries(conn, [stored.id])[stored.id]
    assert (len(summary.engine), summary.text, summary.language) == (
        64,
        "A summary.",
        long_lang[:16],
    )


@pytest.mark.sqlite_only  # SQLite triggers make the database refuse a row
def test_regression_issue10_5_an_item_the_database_refuses_fails_alone(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/t.db")
    with store.begin() as conn:
        # The database refuses one row (as PostgreSQL refused a too-long column).
        conn.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON items WHEN NEW.title = 'poison' "
                "BEGIN SELECT RAISE(ABORT, 'value too long'); END"
            )
        )
        feed_id = conn.execute(
            schema.feeds.insert().values(url="https://f.example/", created=NOW, failures=0)
        ).inserted_primary_key[0]
    items = [
        Item("https://f.example/", g, f"https://f.example/{g}", f"https://f.example/{g}", g, NOW)
        for g in ("a", "poison", "b")
    ]
    failed: list[tuple[Item, str]] = []
    with store.begin() as conn:
        new = insert_items(conn, feed_id, items, now=NOW, failed=failed)
    assert [i.title for _, i in new] == ["a", "b"]
    assert [(i.title, "value too long" in why) for i, why in failed] == [("poison", True)]


# --------------------------------------------------------------------------- 7: address guard


def test_regression_issue10_7_a_feed_on_a_private_address_is_refused_unless_allowed(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/internal-admin").respond_with_data(feed([]))
    url = httpserver.url_for("/internal-admin")
    data = {
        "storage": {"url": f"sqlite:///{tmp_path}/g.db"},
        "delivery": {"mode": "outbox"},
        "feeds": [{"url": url}],
        "topics": TOPICS,
    }
    settings = parse_settings(data, "test.toml")
    counts = collect(settings, open_store(settings.storage.url))
    assert counts.feeds_failed == 1
    [(_, reason)] = counts.failures
    assert "loopback" in reason
    assert "allow_private" in reason
    assert not httpserver.log  # refused before connecting: the server never saw a request
    data["feeds"] = [{"url": url, "allow_private": True}]
    data["storage"] = {"url": f"sqlite:///{tmp_path}/h.db"}
    settings = parse_settings(data, "test.toml")
    # force: the first collect put this feed in backoff (one database on a PostgreSQL run)
    assert collect(settings, open_store(settings.storage.url), force=True).feeds_ok == 1


@pytest.mark.parametrize(
    "target", ["http://169.254.169.254/latest/meta-data/", "http://metadata.google.internal/x"]
)
def test_regression_issue10_7_a_redirect_to_a_metadata_address_is_refused_even_if_private_allowed(
    httpserver: HTTPServer, target: str
) -> None:
    from digest.reader.fetch import fetch_all_sync

    httpserver.expect_request("/feed").respond_with_data(
        "", status=302, headers={"Location": target}
    )
    [result] = fetch_all_sync([FetchRequest(httpserver.url_for("/feed"), allow_private=True)])
    assert result.status is FetchStatus.FAILED
    assert "metadata" in (result.error or "")


# --------------------------------------------------------------------------- 8: OPML


OPML = """<?xml version="1.0"?><opml version="2.0"><head><title>x</title></head><body>
<outline text="js" xmlUrl="javascript:alert(1)"/>
<outline text="ftp" xmlUrl="ftp://files.example/feed.xml"/>
<outline text="file" xmlUrl="file:///etc/passwd"/>
<outline text="proc" xmlUrl="/proc/self/environ"/>
<outline text="meta" xmlUrl="http://169.254.169.254/latest/meta-data/"/>
<outline text="bad" xmlUrl="http://0177.0.0.1/feed"/>
<outline text="good" xmlUrl="https://news.example.org/feed.xml"/>
</body></opml>"""


def test_regression_issue10_8_opml_import_takes_http_feeds_only_and_names_each_refused_one(
    capsys: pytest.CaptureFixture[str], workdir: Path
) -> None:
    config = workdir / "digest.toml"
    config.write_text('[delivery]\nmode = "outbox"\n', encoding="utf-8")
    (workdir / "subs.opml").write_text(OPML, encoding="utf-8")
    result = run_cli(capsys, "--config", str(config), "feeds", "import", "subs.opml")
    assert result.code == 1
    assert len([line for line in result.err.splitlines() if line.startswith("refused:")]) == 6
    written = config.read_text(encoding="utf-8")
    assert 'url = "https://news.example.org/feed.xml"' in written
    for bad in ("javascript", "ftp:", "/etc/passwd", "/proc/self", "169.254", "0177"):
        assert bad not in written
    # With the explicit flag, local files are imported too.
    result = run_cli(
        capsys, "--config", str(config), "feeds", "import", "--allow-local", "subs.opml"
    )
    assert "/proc/self/environ" in config.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "ftp://files.example/feed.xml", "http://169.254.169.254/x"]
)
def test_regression_issue10_8_check_refuses_a_feed_url_import_refuses(
    capsys: pytest.CaptureFixture[str], workdir: Path, url: str
) -> None:
    config = workdir / "digest.toml"
    config.write_text(f'[delivery]\nmode = "outbox"\n[[feeds]]\nurl = "{url}"\n', encoding="utf-8")
    result = run_cli(capsys, "--config", str(config), "check")
    assert result.code == 2
    assert "cannot be a feed" in result.err
    assert "Traceback" not in result.err


# --------------------------------------------------------------------------- 16: LLM breaker


def test_regression_issue10_16_after_one_llm_failure_the_run_stops_asking_and_says_so_once(
    httpserver: HTTPServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    asked: list[int] = []

    def broken(request: Request) -> Response:
        asked.append(1)
        return Response("overloaded", status=503)

    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_handler(broken)
    titles = [
        "CNIL fines a retailer over GDPR",
        "Personal data: a hospital breach",
        "GDPR fine for a bank",
    ]
    httpserver.expect_request("/privacy.xml").respond_with_data(
        feed(
            [(f"p{i}", f"https://news.example/p{i}", t) for i, t in enumerate(titles)],
            desc="The regulator fined the company for keeping personal data far too long. "
            "Customers were never told how long their records were kept.",
        ),
        content_type="application/rss+xml",
    )
    settings = settings_for(
        tmp_path,
        [{"url": httpserver.url_for("/privacy.xml")}],
        summary={"engine": "llm", "llm": {"base_url": httpserver.url_for("/v1"), "model": "m"}},
    )
    store = open_store(settings.storage.url)
    collect(settings, store)
    with store.connect() as conn:
        stored = list(iter_items(conn))
    caplog.set_level("WARNING", logger="digest")
    summaries = summarize_items(settings, store, stored, record=False)
    assert len(asked) == 1
    assert {s.engine for s in summaries.values()} == {"extractive"}
    said = [r for r in caplog.records if "rest of this run" in r.getMessage()]
    assert len(said) == 1


def test_counts_of_failed_items_reach_the_end_of_run_line() -> None:
    from digest.models import RunCounts
    from digest.report import format_counts

    line = format_counts(RunCounts(items_new=4, items_failed=3, items_over_cap=7))
    assert "items 4 new, 3 failed, 7 over the per-feed cap" in line
    assert json.dumps({"line": line})  # one line, printable as is


def test_regression_issue10_1_from_the_command_line_fetch_send_and_status_name_the_bad_items(
    httpserver: HTTPServer,
    capsys: pytest.CaptureFixture[str],
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DIGEST_SECRET", "test-secret-" + "x" * 20)
    httpserver.expect_request("/article").respond_with_data(ARTICLE, content_type="text/html")
    items = [(f"bad{i}", link, f"{ON_TOPIC} ({i})") for i, link in enumerate(INVALID_LINKS)]
    items.append(("good", httpserver.url_for("/article"), ON_TOPIC + " today"))
    httpserver.expect_request("/teasers.xml").respond_with_data(
        feed(items), content_type="application/rss+xml"
    )
    config = workdir / "digest.toml"
    topics = "".join(
        f'[topics.{tid}]\ntitle = "{t["title"]}"\ninclude = {json.dumps(t["include"])}\n'
        for tid, t in TOPICS.items()
    )
    config.write_text(
        '[storage]\nurl = "sqlite:///var/d.db"\n[delivery]\nmode = "outbox"\n'
        f'[[feeds]]\nurl = "{httpserver.url_for("/teasers.xml")}"\nfull_text = true\n'
        f"allow_private = true\n{topics}",
        encoding="utf-8",
    )
    fetched = run_cli(capsys, "--config", str(config), "fetch")
    assert fetched.code == 0
    assert "items: 4 new, 3 failed" in fetched.out
    assert "item failed:" in fetched.out
    assert "invalid IPv4 address 1.2.3.04" in fetched.out
    # The culprit is named by its feed and title (its link is the bad part; the feed's own site
    # link, which stands in for it, would point the operator elsewhere).
    feed_url = httpserver.url_for("/teasers.xml")
    assert f"item failed: {feed_url} item '{ON_TOPIC} (0)': invalid link" in fetched.out
    sent = run_cli(capsys, "--config", str(config), "subscribers", "add", "ann@example.org")
    sent = run_cli(capsys, "--config", str(config), "send")
    assert sent.code == 0
    assert "issue #1" in sent.out
    assert "Traceback" not in sent.err
    status = run_cli(capsys, "--config", str(config), "status")
    assert "Items skipped (failed 3 times or unusable): 3" in status.out


def test_regression_issue10_7_every_redirect_hop_of_a_feed_is_checked_before_connecting(
    httpserver: HTTPServer,
) -> None:
    from digest.reader.fetch import fetch_all_sync

    # The first hop is allowed (an intranet feed); its 302 points at an address refused even
    # then (0.0.0.0 reaches this machine's own services): refused before any connection.
    port = httpserver.port
    httpserver.expect_request("/feed").respond_with_data(
        "", status=302, headers={"Location": f"http://0.0.0.0:{port}/internal-admin"}
    )
    httpserver.expect_request("/internal-admin").respond_with_data(feed([]))
    [result] = fetch_all_sync([FetchRequest(httpserver.url_for("/feed"), allow_private=True)])
    assert result.status is FetchStatus.FAILED
    assert "unspecified" in (result.error or "")
    assert [r.path for r, _ in httpserver.log] == ["/feed"]


def test_regression_issue10_7_check_refuses_a_feed_on_a_literal_private_address(
    capsys: pytest.CaptureFixture[str], workdir: Path
) -> None:
    config = workdir / "digest.toml"
    feeds = '[[feeds]]\nurl = "http://127.0.0.1:8080/feed.xml"\n'
    config.write_text(f'[delivery]\nmode = "outbox"\n{feeds}', encoding="utf-8")
    result = run_cli(capsys, "--config", str(config), "check")
    assert result.code == 2
    assert "feeds[0].url: http://127.0.0.1:8080/feed.xml is a loopback address" in result.err
    config.write_text(
        f'[delivery]\nmode = "outbox"\n{feeds}allow_private = true\n', encoding="utf-8"
    )
    assert run_cli(capsys, "--config", str(config), "check").code == 0


@pytest.mark.sqlite_only  # SQLite triggers make the database refuse a row
def test_regression_issue10_5_a_feed_the_database_refuses_fails_alone_and_the_others_are_stored(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    refused = feed([("r", "https://r.example/1", ON_TOPIC)]).replace(
        "<title>Feed</title>", "<title>Refused feed</title>"
    )
    httpserver.expect_request("/refused.xml").respond_with_data(refused)
    httpserver.expect_request("/fine.xml").respond_with_data(
        feed([("f", "https://f.example/1", ON_TOPIC)])
    )
    settings = settings_for(
        tmp_path,
        [{"url": httpserver.url_for("/refused.xml")}, {"url": httpserver.url_for("/fine.xml")}],
    )
    store = open_store(settings.storage.url)
    with store.begin() as conn:
        conn.execute(
            text(
                "CREATE TRIGGER refuse BEFORE UPDATE OF title ON feeds "
                "WHEN NEW.title = 'Refused feed' BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
            )
        )
    counts = collect(settings, store)
    assert (counts.feeds_ok, counts.feeds_failed, counts.items_new) == (1, 1, 1)
    [(url, reason)] = counts.failures
    assert url.endswith("/refused.xml")
    assert "not stored: disk says no" in reason
    with store.connect() as conn:
        [stored] = list(iter_items(conn))
        errors = dict(conn.execute(select(schema.feeds.c.url, schema.feeds.c.last_error)).all())
    assert stored.item.url == "https://f.example/1"
    assert "disk says no" in errors[httpserver.url_for("/refused.xml")]


@pytest.mark.parametrize(
    ("url", "allow", "said"),
    [
        ("http://[::ffff:10.0.0.1]/feed.xml", False, "is a private address"),
        ("http://100.64.1.2/feed.xml", False, "is a carrier-grade NAT address"),
    ],
)
def test_check_judges_a_feed_address_by_the_fetchs_own_rule(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    allow: bool,
    said: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digest.toml").write_text(
        f'[[feeds]]\nurl = "{url}"\nallow_private = {str(allow).lower()}\n', encoding="utf-8"
    )
    result = run_cli(capsys, "--config", "digest.toml", "check")
    assert result.code == 2
    assert f"feeds[0].url: {url} {said}" in result.err
