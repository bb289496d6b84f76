"""Metrics, the end-of-run counts line, and /healthz + /metrics over real HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from digest.errors import ConfigError
from digest.infra.healthd import Health, HealthServer, parse_address
from digest.infra.metrics import Metrics, run_failure
from digest.models import RunCounts
from digest.report import counts_fields, format_counts
from digest.store import open_store, schema

COUNTS = RunCounts(
    feeds_ok=10,
    feeds_failed=2,
    feeds_not_modified=5,
    items_new=25,
    kept_per_topic=(("sovereign_cloud", 3), ("data_protection", 2)),
    summarized=5,
    sent=120,
    retry=1,
    failed=0,
    issue_number=4,
)


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


# ----------------------------------------------------------------------------- counts line


def test_the_counts_line_gives_every_end_to_end_figure() -> None:
    line = format_counts(COUNTS)
    assert line == (
        "feeds 10 ok, 2 failed, 5 not modified · items 25 new · "
        "kept sovereign_cloud 3, data_protection 2 · summarized 5 · "
        "messages 120 sent, 1 retry, 0 failed · issue #4"
    )
    assert "\n" not in line


def test_the_counts_line_of_an_empty_run_says_so_plainly() -> None:
    assert format_counts(RunCounts()) == (
        "feeds 0 ok, 0 failed · items 0 new · kept none · summarized 0 · "
        "messages 0 sent, 0 retry, 0 failed"
    )


def test_counts_fields_are_flat_values_for_json_logs() -> None:
    fields = counts_fields(COUNTS)
    assert fields["kept"] == {"sovereign_cloud": 3, "data_protection": 2}
    json.dumps(fields)


def test_a_fetch_where_every_feed_failed_counts_as_a_failed_run() -> None:
    assert run_failure("fetch", RunCounts(feeds_failed=3)) == "all 3 feeds failed"
    assert run_failure("fetch", RunCounts(feeds_failed=3, feeds_not_modified=1)) is None
    assert run_failure("send", RunCounts(failed=2)) == "all 2 messages failed"
    assert run_failure("send", RunCounts(failed=2, sent=1)) is None


# ----------------------------------------------------------------------------- metrics


def test_run_counts_add_up_in_the_exposition(tmp_path: Path) -> None:
    metrics = Metrics()
    metrics.record_counts(COUNTS)
    metrics.record_counts(COUNTS)
    metrics.job_succeeded("fetch", 1.5)
    got = samples(metrics.exposition().decode())
    assert got[("digest_feeds_fetched_total", ())] == 30
    assert got[("digest_feeds_failed_total", ())] == 4
    assert got[("digest_items_new_total", ())] == 50
    assert got[("digest_items_kept_total", (("topic", "sovereign_cloud"),))] == 6
    assert got[("digest_messages_sent_total", ())] == 240
    assert got[("digest_messages_retried_total", ())] == 2
    assert got[("digest_issues_total", ())] == 2
    assert got[("digest_job_duration_seconds_count", (("job", "fetch"),))] == 1
    assert got[("digest_job_last_success_timestamp_seconds", (("job", "fetch"),))] > 0


def test_consecutive_failures_reset_on_success() -> None:
    metrics = Metrics()
    metrics.job_failed("send", 0.1, "smtp down")
    metrics.job_failed("send", 0.1, "smtp down")
    assert metrics.jobs()["send"].consecutive_failures == 2
    metrics.job_succeeded("send", 0.1)
    status = metrics.jobs()["send"]
    assert status.consecutive_failures == 0
    assert status.runs == 3
    assert status.last_error == "smtp down"


def test_feed_health_and_deliveries_are_read_from_the_database(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/d.db")
    now = datetime.now(UTC)
    with store.begin() as conn:
        for i, (failures, disabled) in enumerate([(0, False), (2, False), (0, True), (0, False)]):
            conn.execute(
                schema.feeds.insert().values(
                    url=f"https://example.org/{i}",
                    failures=failures,
                    disabled=disabled,
                    created=now,
                )
            )
    metrics = Metrics()
    metrics.watch_store(store)
    got = samples(metrics.exposition().decode())
    assert got[("digest_feeds", (("state", "ok"),))] == 2
    assert got[("digest_feeds", (("state", "failing"),))] == 1
    assert got[("digest_feeds", (("state", "disabled"),))] == 1


# ----------------------------------------------------------------------------- HTTP


class Switch:
    def __init__(self) -> None:
        self.running = True

    def __call__(self) -> bool:
        return self.running


@pytest.fixture
def served() -> Iterator[tuple[HealthServer, Health, Switch]]:
    metrics = Metrics()
    switch = Switch()
    health = Health(metrics=metrics, scheduler_running=switch, unhealthy_after=2)
    server = HealthServer("127.0.0.1:0", health)
    try:
        yield server, health, switch
    finally:
        server.close()


def test_healthz_is_200_with_a_json_body_while_all_is_well(
    served: tuple[HealthServer, Health, Switch],
) -> None:
    server, health, _ = served
    health.metrics.job_succeeded("fetch", 0.2)
    status, ctype, body = get(f"{server.url}/healthz")
    assert status == 200
    assert ctype == "application/json"
    data: dict[str, Any] = json.loads(body)
    assert data["status"] == "ok"
    assert data["problems"] == []
    assert data["jobs"]["fetch"]["runs"] == 1


def test_healthz_is_503_naming_a_job_that_keeps_failing(
    served: tuple[HealthServer, Health, Switch],
) -> None:
    server, health, _ = served
    health.metrics.job_failed("send", 0.1, "smtp.example.org: connection refused")
    assert get(f"{server.url}/healthz")[0] == 200  # once is weather
    health.metrics.job_failed("send", 0.1, "smtp.example.org: connection refused")
    status, _, body = get(f"{server.url}/healthz")
    assert status == 503
    assert json.loads(body)["problems"] == [
        "send failed 2 times in a row: smtp.example.org: connection refused"
    ]


def test_healthz_is_503_when_the_scheduler_stopped(
    served: tuple[HealthServer, Health, Switch],
) -> None:
    server, _, switch = served
    switch.running = False
    status, _, body = get(f"{server.url}/healthz")
    assert status == 503
    assert "scheduler is not running" in json.loads(body)["problems"]


def test_metrics_are_served_in_prometheus_text_format(
    served: tuple[HealthServer, Health, Switch],
) -> None:
    server, health, _ = served
    health.metrics.record_counts(COUNTS)
    status, ctype, body = get(f"{server.url}/metrics")
    assert status == 200
    assert ctype.startswith("text/plain; version=0.0.4")
    assert samples(body.decode())[("digest_messages_sent_total", ())] == 120


def test_other_paths_are_404(served: tuple[HealthServer, Health, Switch]) -> None:
    assert get(f"{served[0].url}/")[0] == 404


def test_a_busy_port_is_a_config_error_naming_the_key(
    served: tuple[HealthServer, Health, Switch],
) -> None:
    server, health, _ = served
    with pytest.raises(ConfigError, match=r"^daemon\.http: cannot listen on 127\.0\.0\.1:"):
        HealthServer(f"127.0.0.1:{server.port}", health)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:9108", ("127.0.0.1", 9108)),
        (":9108", ("0.0.0.0", 9108)),
        ("[::1]:1", ("::1", 1)),
    ],
)
def test_addresses_are_host_and_port(value: str, expected: tuple[str, int]) -> None:
    assert parse_address(value) == expected


@pytest.mark.parametrize("value", ["9108", "localhost:", "host:http", "h:70000"])
def test_a_bad_address_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match=r"daemon\.http: expected host:port"):
        parse_address(value)
