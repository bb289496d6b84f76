"""The daemon's catch-up rule on a controlled clock, in-process (as APScheduler's own tests do):
a send missed while the daemon was down runs once when it is back within ``[schedule] catch_up``,
and is skipped beyond it; either way the next one is the next day's, never a second copy.

The real ``Daemon.serve`` runs in a thread against a real SQLite job store, a local feed and a
local SMTP server; only the wall clock is moved (time-machine), so nothing sleeps until a crontab.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from pytest_httpserver import HTTPServer

from conftest import SMTPSink
from digest import config
from digest.pipeline.collect import collect
from digest.schedule import Daemon
from digest.store import open_store
from digest.store.locks import exclusive
from digest.store.subscribers import add_subscriber

SUBSCRIBERS = ["ada@example.org", "bob@example.org"]
#: The send's crontab time: 08:00 UTC tomorrow, whatever the real date.
DUE = (datetime.now(UTC) + timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
FEED = f"""<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>
<title>Privacy news</title><link>https://news.example/</link><description>x</description>
<item><title>CNIL fines a retailer for GDPR breaches</title><link>https://news.example/p1</link>
<guid isPermaLink='false'>p1</guid>
<pubDate>{(DUE - timedelta(hours=10)).strftime("%a, %d %b %Y %H:%M:%S +0000")}</pubDate>
<description>The CNIL fined a retailer 2 million euros for keeping personal data too long.
Customers were never told how long their data was kept.</description></item>
</channel></rss>"""


def write_config(path: Path, sink: SMTPSink, feed_url: str, catch_up: str) -> None:
    path.write_text(
        f"""
[digest]
title = "Daemon test"
timezone = "UTC"
window_days = 30

[storage]
url = "sqlite:///var/digest.db"

[schedule]
fetch = "0 0 1 1 *"
send = "0 8 * * *"
catch_up = "{catch_up}"

[delivery]
mode = "smtp"
from = "Digest <digest@example.org>"

[smtp]
host = "{sink.host}"
port = {sink.port}
security = "none"
password_env = "DIGEST_TEST_NO_PASSWORD"

[[feeds]]
url = "{feed_url}"
allow_private = true

[topics.data_protection]
title = "Data protection"
include = ["GDPR", "personal data", "CNIL"]
""",
        encoding="utf-8",
    )


def wait_until(condition: Callable[[], object], timeout: float = 30) -> None:
    """Poll ``condition`` (real time: only the wall clock the daemon reads is moved)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@contextmanager
def serving(config_path: Path) -> Iterator[Daemon]:
    """``Daemon.serve`` in a thread, as ``digest run`` runs it (minus signals and the lock)."""
    settings = config.load(config_path)
    store = open_store(settings.storage.url)
    daemon = Daemon(config_path, settings, store)
    # A real lease: a new issue is stored only while the daemon's lease (its token) is held.
    held = exclusive(store, lease=timedelta(hours=1))
    lease = held.__enter__()
    thread = threading.Thread(target=daemon.serve, args=(lease,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: daemon.running() or not thread.is_alive())
        assert thread.is_alive()
        yield daemon
    finally:
        daemon.stop.set()
        thread.join(30)
        held.__exit__(None, None, None)
        store.close()
    assert not thread.is_alive()


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


@pytest.fixture
def site(
    workdir: Path,
    httpserver: HTTPServer,
    smtp_sink: SMTPSink,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> Path:
    """A working folder with two subscribers and one fetched item on topic; returns the config."""
    monkeypatch.setenv("DIGEST_SECRET", "test-secret-" + "x" * 32)
    caplog.set_level(logging.INFO, logger="digest")
    httpserver.expect_request("/feed.xml").respond_with_data(
        FEED, content_type="application/rss+xml"
    )
    cfg = workdir / "digest.toml"
    write_config(cfg, smtp_sink, httpserver.url_for("/feed.xml"), "1h")
    settings = config.load(cfg)
    store = open_store(settings.storage.url)
    try:
        with store.begin() as conn:
            for address in SUBSCRIBERS:
                add_subscriber(conn, address)
        assert collect(settings, store).kept_per_topic
    finally:
        store.close()
    return cfg


def stop_before_the_send(cfg: Path, clock: time_machine.TimeMachineFixture) -> None:
    """A daemon schedules the 08:00 send (kept in the database) and is stopped at 07:59:30."""
    clock.move_to(DUE - timedelta(seconds=30))
    with serving(cfg) as first:
        assert first.next_runs()["send"] == DUE


@pytest.mark.parametrize(
    ("catch_up", "back_at"),
    [("1h", timedelta(minutes=20)), ("1h", timedelta(minutes=59)), ("30s", timedelta(seconds=5))],
)
def test_a_send_missed_while_down_runs_once_when_back_within_the_catch_up(
    site: Path,
    smtp_sink: SMTPSink,
    caplog: pytest.LogCaptureFixture,
    time_machine: time_machine.TimeMachineFixture,
    catch_up: str,
    back_at: timedelta,
) -> None:
    write_config(site, smtp_sink, config.load(site).feeds[0].url, catch_up)
    stop_before_the_send(site, time_machine)
    assert not messages(caplog, "send started")

    time_machine.move_to(DUE + back_at)
    with serving(site) as second:
        wait_until(lambda: messages(caplog, "send done"))
        assert messages(caplog, f"catching up the send run missed at {DUE.isoformat()}")
        assert second.next_runs()["send"] == DUE + timedelta(days=1)  # never a second time
    assert len(messages(caplog, "send started")) == 1
    assert sorted(r for m in smtp_sink.received for r in m.rcpt_tos) == SUBSCRIBERS


@pytest.mark.parametrize(
    ("catch_up", "back_at"),
    [("1h", timedelta(minutes=61)), ("1h", timedelta(hours=5)), ("30s", timedelta(seconds=31))],
)
def test_a_send_missed_beyond_the_catch_up_is_skipped_and_counted(
    site: Path,
    smtp_sink: SMTPSink,
    caplog: pytest.LogCaptureFixture,
    time_machine: time_machine.TimeMachineFixture,
    catch_up: str,
    back_at: timedelta,
) -> None:
    write_config(site, smtp_sink, config.load(site).feeds[0].url, catch_up)
    stop_before_the_send(site, time_machine)

    time_machine.move_to(DUE + back_at)
    with serving(site) as second:
        wait_until(lambda: messages(caplog, "skipped: missed by more than schedule.catch_up"))
        [skipped] = messages(caplog, "skipped")
        assert skipped.startswith(f"send run of {DUE.isoformat(timespec='seconds')} skipped")
        missed = second.metrics.registry.get_sample_value(
            "digest_jobs_missed_total", {"job": "send"}
        )
        assert missed == 1
        assert second.next_runs()["send"] == DUE + timedelta(days=1)
    assert not messages(caplog, "send started")
    assert smtp_sink.received == []


def test_a_send_due_while_running_is_not_called_a_catch_up(
    site: Path,
    smtp_sink: SMTPSink,
    caplog: pytest.LogCaptureFixture,
    time_machine: time_machine.TimeMachineFixture,
) -> None:
    time_machine.move_to(DUE - timedelta(seconds=1))
    with serving(site) as daemon:
        time_machine.move_to(DUE)
        daemon.scheduler.wakeup()  # the scheduler sleeps on the real clock: tell it time moved
        wait_until(lambda: messages(caplog, "send done"))
    assert not messages(caplog, "catching up")
    assert len(smtp_sink.received) == 2
