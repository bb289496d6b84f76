"""One subscriber never blocks the others: a reader whose message cannot be built, or whom the
relay cannot take (no SMTPUTF8), fails with the reason on their delivery row while everyone
else is sent; readers who keep failing are marked bounced instead of being retried forever."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import insert, select

from conftest import SinkHandler, SMTPSink, free_port, run_cli
from delivery_kit import SECRET, WHEN, add_people, settings, store_issue
from digest.config import Settings
from digest.errors import ConfigError
from digest.models import SubscriberStatus
from digest.pipeline.deliver import deliver_issue
from digest.store import Store, open_store, schema
from digest.store import subscribers as subs
from digest.store.subscribers_csv import import_csv
from digest.tokens import new_token_key
from smtp_faults import FaultHandler, fault_server

OTHERS = [f"r{i}@example.org" for i in range(5)]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    s = open_store(f"sqlite:///{tmp_path}/d.db")
    yield s
    s.close()


def sink(*, smtputf8: bool) -> Iterator[SMTPSink]:
    handler = SinkHandler()
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, ready_timeout=60, enable_SMTPUTF8=smtputf8
    )
    controller.start()
    try:
        yield SMTPSink("127.0.0.1", port, handler)
    finally:
        controller.stop()


@pytest.fixture
def ascii_relay() -> Iterator[SMTPSink]:
    """A relay that does not offer SMTPUTF8 (aiosmtpd's default, like many real ones)."""
    yield from sink(smtputf8=False)


@pytest.fixture
def utf8_relay() -> Iterator[SMTPSink]:
    yield from sink(smtputf8=True)


def smtp_settings(port: int, **delivery: object) -> Settings:
    return settings(
        delivery={"mode": "smtp", **delivery},
        smtp={"host": "127.0.0.1", "port": port, "security": "none", "max_attempts": 2},
    )


def rows(store: Store) -> dict[str, tuple[str, str | None]]:
    d, s = schema.deliveries, schema.subscribers
    with store.connect() as conn:
        got = conn.execute(
            select(s.c.email, d.c.state, d.c.last_error).join(s, s.c.id == d.c.subscriber_id)
        )
        return {e: (st, err) for e, st, err in got}


def import_people(store: Store, tmp_path: Path) -> None:
    csv_file = tmp_path / "people.csv"
    lines = ["email,name", '"josé@example.org","Evil\r\nX: 1"']
    lines += [f"{a},Reader" for a in OTHERS]
    csv_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with store.begin() as conn:
        import_csv(conn, csv_file, secret=SECRET.encode())


def test_import_cleans_line_breaks_and_control_characters_out_of_names(
    store: Store, tmp_path: Path
) -> None:
    import_people(store, tmp_path)
    with store.connect() as conn:
        record = subs.get_by_email(conn, "josé@example.org")
    assert record is not None
    assert record.name == "Evil X: 1"
    assert subs.clean_name("a\x00b\tc\u2028d\x85e\x1b[31m") == "a b c d e [31m"
    assert subs.clean_name(" \r\n ") is None
    assert subs.clean_name("x" * 1000) == "x" * subs.MAX_NAME


def test_a_non_ascii_reader_with_a_crlf_name_does_not_stop_the_others_on_a_relay_without_smtputf8(
    store: Store, tmp_path: Path, ascii_relay: SMTPSink
) -> None:
    import_people(store, tmp_path)
    store_issue(store)
    report = deliver_issue(smtp_settings(ascii_relay.port), store, 1, retry_base=0.01)
    got = rows(store)
    assert {a for a, (st, _) in got.items() if st == "sent"} == set(OTHERS)
    state, reason = got["josé@example.org"]
    assert state == "failed"
    assert reason is not None
    assert "SMTPUTF8" in reason
    assert sorted(r for m in ascii_relay.received for r in m.rcpt_tos) == sorted(OTHERS)
    assert report.finished
    assert report.failed == 1
    assert [a for a, _ in report.failures] == ["josé@example.org"]


def test_a_non_ascii_reader_gets_the_issue_when_the_relay_offers_smtputf8(
    store: Store, tmp_path: Path, utf8_relay: SMTPSink
) -> None:
    import_people(store, tmp_path)
    store_issue(store)
    deliver_issue(smtp_settings(utf8_relay.port), store, 1, retry_base=0.01)
    assert {st for st, _ in rows(store).values()} == {"sent"}
    to_jose = [m for m in utf8_relay.received if m.rcpt_tos == ["josé@example.org"]]
    assert len(to_jose) == 1
    msg = to_jose[0].message()
    assert "X" not in msg  # no injected header
    assert str(msg["To"]) == '"Evil X: 1" <josé@example.org>'


def _insert_raw(store: Store, email: str, name: str | None = None) -> None:
    """A row as an older version (or a hand edit) might have left it: no validation."""
    with store.begin() as conn:
        conn.execute(
            insert(schema.subscribers).values(
                email=email,
                email_key=email.lower(),
                name=name,
                status="active",
                topics="",
                created=WHEN,
                source="test",
                token_key=new_token_key(),
            )
        )


def test_a_reader_whose_message_cannot_be_built_fails_with_the_reason_and_the_rest_are_sent(
    store: Store, ascii_relay: SMTPSink
) -> None:
    add_people(store, OTHERS)
    _insert_raw(store, "bad\r\nBcc: x@evil.example@example.org")
    store_issue(store)
    report = deliver_issue(smtp_settings(ascii_relay.port), store, 1, retry_base=0.01)
    got = rows(store)
    assert {a for a, (st, _) in got.items() if st == "sent"} == set(OTHERS)
    state, reason = got["bad\r\nBcc: x@evil.example@example.org"]
    assert state == "failed"
    assert reason is not None
    assert reason.startswith("message not built: To header:")
    assert report.finished
    assert all(b"Bcc" not in m.data for m in ascii_relay.received)


def test_a_line_break_in_a_shared_header_is_a_config_error_before_anyone_is_touched(
    store: Store, ascii_relay: SMTPSink
) -> None:
    add_people(store, OTHERS)
    store_issue(store)
    # Loading refuses this (test_config); a value that got past it is still stopped here.
    base = smtp_settings(ascii_relay.port)
    bad = base.delivery.model_copy(update={"reply_to": "a@example.org\r\nBcc: x@evil.example"})
    cfg = base.model_copy(update={"delivery": bad})
    with pytest.raises(ConfigError, match=r"delivery\.reply_to"):
        deliver_issue(cfg, store, 1, retry_base=0.01)
    assert ascii_relay.received == []
    assert {st for st, _ in rows(store).values()} <= {"pending"}


def test_a_reader_refused_for_good_three_issues_running_is_marked_bounced_and_skipped(
    store: Store,
) -> None:
    add_people(store, [*OTHERS, "gone@example.org"])
    handler = FaultHandler(plan={"gone@example.org": ["550"] * 10})
    with fault_server(handler) as server:
        cfg = smtp_settings(server.port)
        for number in (1, 2, 3):
            store_issue(store, number)
            report = deliver_issue(cfg, store, number, retry_base=0.01)
            assert report.bounced == (["gone@example.org"] if number == 3 else [])
        with store.connect() as conn:
            record = subs.get_by_email(conn, "gone@example.org")
        assert record is not None
        assert record.status is SubscriberStatus.BOUNCED
        store_issue(store, 4)
        report = deliver_issue(cfg, store, 4, retry_base=0.01)
    assert report.failed == 0
    assert report.sent == len(OTHERS)
    assert handler.attempts["gone@example.org"] == 3  # not tried for issue 4


def test_send_and_status_count_the_failed_and_bounced_readers(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    handler = FaultHandler(plan={"gone@example.org": ["550"] * 10})
    with fault_server(handler) as server:
        (workdir / "digest.toml").write_text(
            '[storage]\nurl = "sqlite:///var/d.db"\n'
            '[delivery]\nmode = "smtp"\nfrom = "Veille <veille@news.example.org>"\n'
            "bounce_after = 1\n"
            f'[smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\n',
            encoding="utf-8",
        )
        (workdir / "var").mkdir()
        store = open_store("sqlite:///var/d.db")
        add_people(store, ["ok@example.org", "gone@example.org"])
        store_issue(store)
        store.close()
        result = run_cli(capsys, "--config", "digest.toml", "send")
    assert result.code == 1  # something failed: said, not raised
    assert "1 message(s) failed: digest deliveries lists each" in result.err
    assert "Traceback" not in result.err
    assert "1 sent" in result.out
    assert "1 failed, 1 subscriber(s) marked bounced" in result.out
    status = run_cli(capsys, "--config", "digest.toml", "status", "--json")
    doc = json.loads(status.out)
    assert doc["subscribers"]["bounced"] == 1
    assert doc["subscribers"]["active"] == 1
    text = run_cli(capsys, "--config", "digest.toml", "status")
    assert "Subscribers: 1 active, 1 bounced" in text.out


def test_the_reported_case_josé_with_a_crlf_name_imported_then_digest_send(
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    ascii_relay: SMTPSink,
) -> None:
    """Issue 10, item 2, as reported: every `digest send` stopped with "'josé@example.org':
    cannot be used as a mail address" and everyone stayed pending."""
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    (workdir / "digest.toml").write_text(
        '[storage]\nurl = "sqlite:///d.db"\n'
        '[delivery]\nmode = "smtp"\nfrom = "Veille <veille@news.example.org>"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {ascii_relay.port}\nsecurity = "none"\n',
        encoding="utf-8",
    )
    rows = ["email,name", '"josé@example.org","Evil\r\nX: 1"'] + [f"{a},R" for a in OTHERS]
    (workdir / "people.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert run_cli(capsys, "--config", "digest.toml", "subscribers", "import", "people.csv")[0] == 0
    store = open_store("sqlite:///d.db")
    store_issue(store)
    store.close()
    result = run_cli(capsys, "--config", "digest.toml", "send")
    assert "Traceback" not in result.err
    assert "5 sent, 0 to retry, 1 failed" in result.out
    assert result.code == 1
    report = run_cli(capsys, "--config", "digest.toml", "deliveries")
    assert "failed josé@example.org: RCPT josé@example.org: the relay does not offer SMTPUTF8" in (
        report.out
    )
    assert len(ascii_relay.received) == len(OTHERS)
