"""The daemon's scheduling rules, in process: crontabs, stored jobs across restarts, reloads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest import config
from digest.errors import ConfigError
from digest.schedule import Daemon
from digest.store import Store, open_store

BASE = """
[digest]
timezone = "Europe/Paris"

[storage]
url = "sqlite:///{db}"

[schedule]
fetch = "{fetch}"
send = "{send}"
catch_up = "{catch_up}"
"""


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "digest.toml"
        self.db = tmp_path / "digest.db"
        self.write()

    def write(
        self, fetch: str = "0 * * * *", send: str = "0 8 * * mon", catch_up: str = "12h"
    ) -> None:
        self.path.write_text(
            BASE.format(db=self.db, fetch=fetch, send=send, catch_up=catch_up), encoding="utf-8"
        )

    def daemon(self, store: Store) -> Daemon:
        d = Daemon(self.path, config.load(self.path), store)
        d.scheduler.start(paused=True)  # paused: nothing runs, the job store is live
        d.sync_jobs()
        return d


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Setup, Store]]:
    s = Setup(tmp_path)
    store = open_store(f"sqlite:///{s.db}")
    yield s, store
    store.close()


def stop(d: Daemon) -> None:
    d.scheduler.shutdown(wait=False)


def test_a_five_field_crontab_runs_in_the_configured_timezone() -> None:
    trigger = config.Crontab.parse("0 8 * * mon").trigger("Europe/Paris")
    after = datetime(2026, 11, 25, tzinfo=UTC)  # a Wednesday
    fire = trigger.get_next_fire_time(None, after)
    assert fire is not None
    assert fire.isoformat() == "2026-11-30T08:00:00+01:00"


def test_a_six_field_crontab_has_seconds_first() -> None:
    trigger = config.Crontab.parse("*/2 * * * * *").trigger("UTC")
    after = datetime(2026, 11, 25, 10, 0, 1, tzinfo=UTC)
    fire = trigger.get_next_fire_time(None, after)
    assert fire == datetime(2026, 11, 25, 10, 0, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("crontab", "message"),
    [
        ("*/2 * * * * * *", "expected 5 fields (or 6, seconds first), got 7"),
        ("61 * * * * *", "invalid crontab '61 * * * * *'"),
    ],
)
def test_a_bad_crontab_is_a_config_error_naming_the_key(
    tmp_path: Path, crontab: str, message: str
) -> None:
    s = Setup(tmp_path)
    s.write(send=crontab)
    with pytest.raises(ConfigError) as info:
        config.load(s.path)
    assert str(info.value).startswith(f"{s.path}: schedule.send: ")
    assert message in str(info.value)


def test_jobs_are_stored_in_the_database_with_the_catch_up_grace(
    setup: tuple[Setup, Store],
) -> None:
    s, store = setup
    d = s.daemon(store)
    jobs = {j.id: j for j in d.jobstore.get_all_jobs()}
    stop(d)
    assert set(jobs) == {"fetch", "send", "prune"}  # prune: [storage] retention is on by default
    assert jobs["send"].misfire_grace_time == 12 * 3600
    assert jobs["send"].coalesce is True
    assert jobs["send"].max_instances == 1
    assert jobs["send"].next_run_time.weekday() == 0  # a Monday
    assert jobs["send"].next_run_time.hour == 8


def test_a_restart_keeps_a_missed_run_instead_of_recomputing_it(
    setup: tuple[Setup, Store],
) -> None:
    s, store = setup
    d = s.daemon(store)
    missed = datetime.now(UTC) - timedelta(hours=2)
    job = d.jobstore.lookup_job("send")
    job._modify(next_run_time=missed)  # as if the daemon had been down at 08:00
    d.jobstore.update_job(job)
    stop(d)

    again = s.daemon(store)
    kept = again.jobstore.lookup_job("send").next_run_time
    stop(again)
    assert kept == missed  # the scheduler will run it once, within the grace


def test_a_changed_crontab_reschedules_and_a_changed_grace_is_applied(
    setup: tuple[Setup, Store],
) -> None:
    s, store = setup
    stop(s.daemon(store))
    s.write(send="30 9 * * tue", catch_up="1h")
    d = s.daemon(store)
    job = d.jobstore.lookup_job("send")
    stop(d)
    assert job.next_run_time.weekday() == 1
    assert (job.next_run_time.hour, job.next_run_time.minute) == (9, 30)
    assert job.misfire_grace_time == 3600


def test_a_run_a_stop_kept_from_starting_gets_its_due_time_back(
    setup: tuple[Setup, Store],
) -> None:
    s, store = setup
    d = s.daemon(store)
    due = datetime.now(UTC) - timedelta(minutes=1)
    d._not_run["send"] = due
    stop(d)
    d._put_back()
    assert d.jobstore.lookup_job("send").next_run_time == due


def test_an_invalid_config_edit_keeps_the_last_good_settings(setup: tuple[Setup, Store]) -> None:
    s, store = setup
    d = s.daemon(store)
    s.path.write_text(s.path.read_text() + "\n[bogus]\n", encoding="utf-8")
    kept = d.reload("job")
    s.write(send="0 9 * * mon")
    new = d.reload("job")
    stop(d)
    assert kept.schedule.send.text == "0 8 * * mon"
    assert new.schedule.send.text == "0 9 * * mon"
    assert d.metrics.config_reload_errors._value.get() == 1
