"""The real daemon process (`digest run`) with per-second crontabs, a local feed and SMTP server.

Each test starts `digest` as a subprocess, reads its JSON log lines, and talks to it over HTTP
and signals only, as an operator would: what only a process shows (signals, exit codes, the
database lock, the health endpoint). The catch-up rules run in-process on a controlled clock in
tests/test_daemon_clock.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select

from conftest import SMTPSink, free_port
from digest.cli import main
from digest.store import open_store, schema
from digest.store.locks import holder_of
from digest.store.subscribers import add_subscriber

pytestmark = pytest.mark.slow

NOW = datetime.now(UTC)
SUBSCRIBERS = ["ada@example.org", "bob@example.org"]


def rss(items: list[tuple[str, str, str]]) -> str:
    body = "".join(
        f"<item><title>{t}</title><link>https://news.example/{g}</link>"
        f"<guid isPermaLink='false'>{g}</guid>"
        f"<pubDate>{format_datetime(NOW - timedelta(hours=1))}</pubDate>"
        f"<description><![CDATA[<p>{d}</p>]]></description></item>"
        for g, t, d in items
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        "<title>Privacy news</title><link>https://news.example/</link>"
        f"<description>x</description>{body}</channel></rss>"
    )


FEED = rss(
    [
        (
            "p1",
            "CNIL fines a retailer for GDPR breaches",
            "The CNIL fined a retailer 2 million euros for keeping personal data too long. "
            "Customers were never told how long their data was kept.",
        ),
        ("w1", "Weather: a cloudy weekend", "Clouds and rain all weekend in the north."),
    ]
)


def digest_command() -> list[str]:
    script = Path(sys.executable).with_name("digest")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from digest.cli import main; main()"]


class Daemon:
    """A `digest run` subprocess whose JSON log lines are collected as they come."""

    def __init__(self, cwd: Path, config: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*digest_command(), "--log-format", "json", "--config", str(config), "run", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "DIGEST_SECRET": "test-secret-" + "x" * 32},
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def records(self) -> list[dict[str, Any]]:
        out = []
        with self._cond:
            lines = list(self.lines)
        for line in lines:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                out.append({"message": line, "level": "raw"})
        return out

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for rec in self.records():
                if predicate(rec):
                    return rec
            if self.proc.poll() is not None:
                self._reader.join(5)
                for rec in self.records():
                    if predicate(rec):
                        return rec
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
            with self._cond:
                self._cond.wait(0.2)
        raise AssertionError(f"timed out waiting for a log line:\n{self.log()}")

    def messages(self, text: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if text in r.get("message", "")]

    def log(self) -> str:
        with self._cond:
            return "\n".join(self.lines[-60:])

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 5) -> int:
        """Send ``sig`` and return the exit code; fails if it takes longer than ``timeout``."""
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"daemon still running {timeout}s after {sig!r}; its last lines:\n{self.log()}"
            ) from None
        self._reader.join(5)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def started(rec: dict[str, Any]) -> bool:
    return rec.get("message") == "daemon started"


def done(job: str) -> Callable[[dict[str, Any]], bool]:
    return lambda rec: rec.get("message", "").startswith(f"{job} done:")


def get_json(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return str(resp.read().decode())


@pytest.fixture
def site(workdir: Path, httpserver: HTTPServer, smtp_sink: SMTPSink) -> Iterator[Site]:
    httpserver.expect_request("/feed.xml").respond_with_data(
        FEED, content_type="application/rss+xml"
    )
    httpserver.expect_request("/broken.xml").respond_with_data("oops", status=500)
    s = Site(workdir, httpserver, smtp_sink)
    store = open_store("sqlite:///var/digest.db")
    with store.begin() as conn:
        for address in SUBSCRIBERS:
            add_subscriber(conn, address)
    store.close()
    try:
        yield s
    finally:
        for d in s.daemons:
            d.close()


class Site:
    """A working folder with a config, a feed server, an SMTP sink and the daemons started."""

    def __init__(self, root: Path, http: HTTPServer, sink: SMTPSink) -> None:
        self.root = root
        self.http = http
        self.sink = sink
        self.port = free_port()
        self.config = root / "digest.toml"
        self.daemons: list[Daemon] = []

    def write_config(
        self,
        *,
        fetch: str = "* * * * * *",
        send: str = "*/2 * * * * *",
        catch_up: str = "1h",
        lease: str = "2s",
        lock_wait: str = "0s",
        feeds: tuple[str, ...] = ("/feed.xml",),
        extra: str = "",
    ) -> None:
        feed_tables = "".join(
            # Served on 127.0.0.1: allowed as an intranet feed would be.
            f'[[feeds]]\nurl = "{f if "://" in f else self.http.url_for(f)}"\n'
            "allow_private = true\n"
            for f in feeds
        )
        self.config.write_text(
            f"""
[digest]
title = "Daemon test"
timezone = "UTC"
window_days = 30

[storage]
url = "sqlite:///var/digest.db"

[schedule]
fetch = "{fetch}"
send = "{send}"
catch_up = "{catch_up}"

[daemon]
http = "127.0.0.1:{self.port}"
lock_lease = "{lease}"
lock_wait = "{lock_wait}"

[delivery]
mode = "smtp"
from = "Digest <digest@example.org>"

[smtp]
host = "{self.sink.host}"
port = {self.sink.port}
security = "none"
password_env = "DIGEST_TEST_NO_PASSWORD"

{feed_tables}
[topics.data_protection]
title = "Data protection"
include = ["GDPR", "personal data", "CNIL"]
{extra}
""",
            encoding="utf-8",
        )

    def start(self, *args: str) -> Daemon:
        d = Daemon(self.root, self.config, *args)
        self.daemons.append(d)
        return d

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def recipients(self) -> list[str]:
        return sorted(r for m in self.sink.received for r in m.rcpt_tos)


FETCH_60S = "[fetch]\ntimeout = 60\n"


def test_the_daemon_fetches_and_sends_on_schedule_serves_health_and_stops_on_sigterm(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    site.write_config(feeds=("/feed.xml", "/broken.xml"))
    daemon = site.start()
    daemon.wait_for(started)
    sent = daemon.wait_for(lambda r: done("send")(r) and r.get("sent") == 2)
    assert sent["issue"] == 1
    assert "messages 2 sent, 0 retry, 0 failed" in sent["message"]
    fetched = daemon.wait_for(done("fetch"))
    assert fetched["feeds_ok"] + fetched["feeds_failed"] >= 1

    status, health = get_json(site.url("/healthz"))
    assert status == 200, health
    assert health["status"] == "ok"
    assert health["jobs"]["send"]["runs"] >= 1
    metrics = get_text(site.url("/metrics"))
    assert "digest_messages_sent_total 2.0" in metrics
    assert 'digest_job_duration_seconds_count{job="fetch"}' in metrics
    assert 'digest_feeds{state="ok"} 1.0' in metrics
    assert 'digest_feeds{state="failing"} 1.0' in metrics

    # A second daemon on the same database refuses to start and names the first.
    second = subprocess.run(
        [*digest_command(), "--config", str(site.config), "run"],
        cwd=site.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 2
    assert f"is in use by {os.uname().nodename} pid {daemon.pid} since " in second.stderr
    assert second.stderr.count("\n") == 1

    assert daemon.terminate(signal.SIGTERM, timeout=5) == 0
    assert daemon.messages("daemon stopped")
    # Nothing half-recorded: every delivery settled, each subscriber mailed once, lock released.
    store = open_store("sqlite:///var/digest.db")
    with store.connect() as conn:
        states = conn.execute(select(schema.deliveries.c.state)).scalars().all()
    assert sorted(states) == ["sent", "sent"]
    assert site.recipients() == SUBSCRIBERS
    assert holder_of(store) is None

    # `digest status` shows the failing feed's error and when it is tried next.
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(site.config), "status", "--json"])
    assert exit_info.value.code == 0
    ok, broken = json.loads(capsys.readouterr().out)["feeds"]
    assert ok["last_error"] is None
    assert ok["items_total"] == 2
    assert ok["items_kept"] == 1
    assert "500" in broken["last_error"]
    assert broken["consecutive_failures"] == 1  # backing off: not retried every second
    assert datetime.fromisoformat(broken["next_try"]) > datetime.now(UTC) + timedelta(minutes=4)


def test_an_invalid_config_edit_keeps_the_last_good_one_and_sighup_reloads(site: Site) -> None:
    site.write_config(send="0 0 0 1 1 *")
    daemon = site.start()
    daemon.wait_for(started)
    daemon.wait_for(done("fetch"))
    good = site.config.read_text(encoding="utf-8")
    site.config.write_text(good + "\n[digest.bogus]\n", encoding="utf-8")
    daemon.proc.send_signal(signal.SIGHUP)
    error = daemon.wait_for(lambda r: "config not reloaded" in r.get("message", ""))
    assert f"{site.config}: digest.bogus: unknown key" in error["message"]
    before = len(daemon.messages("fetch done"))
    daemon.wait_for(lambda r: len(daemon.messages("fetch done")) > before)  # still working
    # A valid edit of a crontab is applied without a restart.
    site.config.write_text(good.replace('send = "0 0 0 1 1 *"', 'send = "0 0 0 2 1 *"'))
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for(lambda r: r.get("message") == "rescheduled send: 0 0 0 2 1 *")
    _, health = get_json(site.url("/healthz"))
    assert health["jobs"]["send"]["next_run"].startswith(f"{datetime.now(UTC).year + 1}-01-02")
    assert daemon.terminate() == 0


def test_sigterm_during_a_hung_download_exits_within_5_s_and_records_nothing_for_that_feed(
    site: Site, silent_site: str
) -> None:
    hung = f"{silent_site}/feed.xml"
    site.write_config(send="0 0 0 1 1 *", feeds=("/feed.xml", hung), extra=FETCH_60S)
    daemon = site.start()
    daemon.wait_for(lambda r: r.get("message") == "fetch started")
    time.sleep(1)  # the hung site holds the run (a 60 s timeout)
    assert daemon.terminate(timeout=5) == 0
    assert daemon.wait_for(lambda r: r.get("message", "").startswith("fetch stopped early"))
    store = open_store("sqlite:///var/digest.db")
    try:
        with store.begin() as conn:
            feed = conn.execute(
                select(schema.feeds.c.failures, schema.feeds.c.last_fetch).where(
                    schema.feeds.c.url == hung
                )
            ).one()
    finally:
        store.close()
    assert feed.failures == 0
    assert feed.last_fetch is None


def test_after_sigkill_a_new_daemon_on_this_host_starts_at_once(site: Site) -> None:
    # The default lease (60 s) and no lock_wait: only seeing the holder dead lets it start.
    site.write_config(send="0 0 0 1 1 *", lease="60s")
    first = site.start()
    first.wait_for(started)
    first.terminate(signal.SIGKILL)
    store = open_store("sqlite:///var/digest.db")
    dead = holder_of(store)
    assert dead is not None
    assert dead.pid == first.pid
    second = site.start()
    second.wait_for(started)
    taken = holder_of(store)
    assert taken is not None
    assert taken.pid == second.pid
    assert taken.since < dead.expires  # well before the dead daemon's lease ran out
    assert second.terminate() == 0


def test_a_standby_daemon_takes_over_when_the_active_one_is_killed_and_sends_once(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    # No send due while both start (however long that takes on a loaded machine).
    site.write_config(send="0 0 0 1 1 *", lease="60s")
    standby_port = free_port()
    standby_config = site.root / "standby.toml"

    def write_standby_config() -> None:
        standby_config.write_text(
            site.config.read_text(encoding="utf-8")
            .replace(f'http = "127.0.0.1:{site.port}"', f'http = "127.0.0.1:{standby_port}"')
            .replace("[daemon]\n", "[daemon]\nstandby = true\n"),
            encoding="utf-8",
        )

    write_standby_config()
    active = site.start()
    active.wait_for(started)
    standby = Daemon(site.root, standby_config)
    site.daemons.append(standby)
    standby.wait_for(lambda r: r.get("message", "").startswith("standby: waiting"))
    # A standby is healthy while it waits, and `digest status` lists it.
    status, health = get_json(f"http://127.0.0.1:{standby_port}/healthz")
    assert status == 200, health
    assert health["status"] == "standby"
    assert f"pid {active.pid}" in health["active"]
    with pytest.raises(SystemExit):
        main(["--config", str(site.config), "status", "--json"])
    shown = json.loads(capsys.readouterr().out)
    assert shown["daemon"]["pid"] == active.pid
    assert [s["pid"] for s in shown["standby"]] == [standby.pid]

    active.terminate(signal.SIGKILL)
    assert not site.sink.received  # the active daemon sent nothing
    # The next send is due in a few seconds; run late by the standby if its takeover is slower
    # (a missed run within catch_up runs once).
    due = datetime.now(UTC) + timedelta(seconds=5)
    site.write_config(send=f"{due.second} {due.minute} {due.hour} * * *", lease="60s")
    write_standby_config()
    # Dead on this host: taken over at once, though 60 s of its lease were left.
    standby.wait_for(lambda r: r.get("message") == "standby: took over the schedule")
    standby.wait_for(started)
    sent = standby.wait_for(lambda r: done("send")(r) and r.get("sent") == 2, timeout=90)
    assert sent["issue"] == 1
    assert standby.terminate() == 0
    assert site.recipients() == SUBSCRIBERS  # the scheduled send went out once
    store = open_store("sqlite:///var/digest.db")
    try:
        assert holder_of(store) is None
    finally:
        store.close()
