"""The [bounces] IMAP mailbox, against a real dovecot: each message is processed once, then
moved (or deleted); `digest bounces poll` and the daemon's job read it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import run_cli
from delivery_kit import SECRET, settings
from digest.bounces import IMAPOptions, Mailbox
from digest.errors import DeliveryError
from digest.models import SubscriberStatus
from digest.pipeline.bounces import poll_mailbox
from digest.store import Store, open_store
from digest.store import subscribers as subs
from dovecot_kit import Dovecot, dovecot_server
from test_bounces import SAMPLES, delivered, dsn

pytestmark = pytest.mark.slow


@pytest.fixture
def imap() -> Iterator[Dovecot]:
    with dovecot_server() as server:
        yield server


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    monkeypatch.setenv("DIGEST_BOUNCES_PASSWORD", "imap-test-password")
    return open_store(f"sqlite:///{tmp_path}/d.db")


def bounce_settings(imap: Dovecot, **extra: object):  # type: ignore[no-untyped-def]
    return settings(
        bounces={
            "host": imap.host,
            "port": imap.port,
            "security": "none",
            "username": imap.user,
            **extra,
        }
    )


def status_of(store: Store, address: str) -> SubscriberStatus:
    with store.connect() as conn:
        rec = subs.get_by_email(conn, address)
    assert rec is not None
    return rec.status


def test_polling_processes_each_message_once_and_moves_it_to_the_processed_folder(
    imap: Dovecot, store: Store, tmp_path: Path
) -> None:
    ids = delivered(store, tmp_path, ["ann@example.org", "bob@example.org"])
    imap.append(dsn("postfix-5.1.1.eml", to="ann@example.org", message_id=ids["ann@example.org"]))
    imap.append((SAMPLES / "autoreply.eml").read_bytes())
    imap.append(
        dsn(
            "arf-complaint.eml",
            to="bob@example.org",
            message_id=ids["bob@example.org"],
            report_id="<arf2@x>",
        )
    )
    report = poll_mailbox(bounce_settings(imap), store)
    assert (report.processed, report.matched, report.bounced, report.unsubscribed) == (3, 2, 1, 1)
    assert status_of(store, "ann@example.org") is SubscriberStatus.BOUNCED
    assert status_of(store, "bob@example.org") is SubscriberStatus.UNSUBSCRIBED
    assert imap.count("INBOX") == 0
    assert imap.count("Processed") == 3
    # A second poll finds nothing left.
    assert poll_mailbox(bounce_settings(imap), store).processed == 0


def test_with_after_delete_processed_messages_are_gone(
    imap: Dovecot, store: Store, tmp_path: Path
) -> None:
    delivered(store, tmp_path, ["ann@example.org"])
    imap.append((SAMPLES / "autoreply.eml").read_bytes())
    report = poll_mailbox(bounce_settings(imap, after="delete"), store)
    assert report.processed == 1
    assert imap.count("INBOX") == 0
    assert imap.count("Processed") == 0


def test_a_wrong_password_is_one_clear_error(imap: Dovecot) -> None:
    options = IMAPOptions(
        host=imap.host, port=imap.port, security="none", username=imap.user, password="nope"
    )
    with pytest.raises(DeliveryError, match="login as bounces refused"), Mailbox(options):
        pass


def test_digest_bounces_poll_reports_what_it_did(
    imap: Dovecot,
    store: Store,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = delivered(store, tmp_path, ["ann@example.org"])
    imap.append(
        dsn("qmail.eml", to="x", message_id=ids["ann@example.org"]).replace(
            b"heidi@example.net", b"ann@example.org"
        )
    )
    config = tmp_path / "digest.toml"
    config.write_text(
        f'[storage]\nurl = "sqlite:///{tmp_path}/d.db"\n'
        f'[delivery]\nfrom = "Veille <veille@news.example.org>"\n'
        f'[bounces]\nhost = "{imap.host}"\nport = {imap.port}\nsecurity = "none"\n'
        f'username = "{imap.user}"\n'
    )
    result = run_cli(capsys, "--config", str(config), "bounces", "poll")
    assert result.code == 0, result.err
    assert "ann@example.org: hard 5.1.1 -> bounced" in result.out
    assert "1 message(s) processed, 1 matched, 1 bounced" in result.out


def test_the_daemon_polls_the_mailbox_when_bounces_host_is_set(
    imap: Dovecot, store: Store, tmp_path: Path
) -> None:
    from digest import config as cfg
    from digest.schedule import Daemon

    ids = delivered(store, tmp_path, ["ann@example.org"])
    imap.append(dsn("postfix-5.1.1.eml", to="ann@example.org", message_id=ids["ann@example.org"]))
    path = tmp_path / "digest.toml"
    path.write_text(
        f'[storage]\nurl = "sqlite:///{tmp_path}/d.db"\n'
        f'[delivery]\nfrom = "Veille <veille@news.example.org>"\n'
        f'[bounces]\nhost = "{imap.host}"\nport = {imap.port}\nsecurity = "none"\n'
        f'username = "{imap.user}"\npoll_every = "5m"\n'
    )
    daemon = Daemon(path, cfg.load(path), store)
    daemon.scheduler.start(paused=True)
    try:
        daemon.sync_jobs()
        job = daemon.scheduler.get_job("bounces")
        assert job is not None
        assert job.trigger.interval.total_seconds() == 300
        daemon.run_job("bounces")  # what the scheduler calls every 5 minutes
    finally:
        daemon.scheduler.shutdown(wait=False)
    assert status_of(store, "ann@example.org") is SubscriberStatus.BOUNCED
    assert imap.count("INBOX") == 0
    assert daemon.metrics.jobs()["bounces"].last_success is not None
