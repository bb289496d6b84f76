"""SMTP faults: 4xx and drops are retried, 5xx fails one reader, auth/TLS stop the run."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from delivery_kit import SECRET, add_people, settings, store_issue
from digest.config import Settings
from digest.errors import FatalDeliveryError, TransientDeliveryError
from digest.pipeline.deliver import deliver_issue, unfinished_issues
from digest.store import Store, open_store, schema
from smtp_faults import FaultHandler, fault_server, server_tls

PEOPLE = [f"r{i}@example.org" for i in range(12)]


@pytest.fixture
def store(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    s = open_store(db_url)
    store_issue(s)
    return s


def rows(store: Store) -> dict[str, tuple[str, int, str | None]]:
    d, s = schema.deliveries, schema.subscribers
    with store.connect() as conn:
        got = conn.execute(
            select(s.c.email, d.c.state, d.c.attempts, d.c.last_error).join(
                s, s.c.id == d.c.subscriber_id
            )
        )
        return {e: (st, n, err) for e, st, n, err in got}


def smtp_settings(port: int, **smtp: object) -> Settings:
    return settings(
        delivery={"mode": "smtp"},
        smtp={"host": "127.0.0.1", "port": port, "security": "none", **smtp},
    )


@pytest.mark.parametrize("pipelining", [False, True], ids=["plain", "pipelining"])
@pytest.mark.parametrize("stage", ["RCPT", "DATA"])
def test_every_reader_ends_sent_or_failed_with_the_reason_and_none_twice(
    store: Store, stage: str, pipelining: bool
) -> None:
    add_people(store, PEOPLE)
    plan: dict[str, list[str | None]] = {
        "r1@example.org": ["451"],
        "r2@example.org": ["550"],
        "r3@example.org": ["421", "451"],
        "r4@example.org": ["drop"],
        "r5@example.org": ["452", "drop", "451"],
        "r6@example.org": ["554"],
    }
    handler = FaultHandler(plan=plan, stage=stage, pipelining=pipelining)
    with fault_server(handler) as server:
        cfg = smtp_settings(server.port, connections=2, max_attempts=5)
        report = deliver_issue(cfg, store, 1, retry_base=0.01)
    got = rows(store)
    failed = {"r2@example.org", "r6@example.org"}
    assert {e for e, (st, _, _) in got.items() if st == "failed"} == failed
    assert {e for e, (st, _, _) in got.items() if st == "sent"} == set(PEOPLE) - failed
    assert got["r2@example.org"][2] == f"{stage} 550 5.1.1 No such user here"
    assert got["r6@example.org"][2] == f"{stage} 554 5.7.1 Rejected as spam"
    assert got["r5@example.org"][:2] == ("sent", 4)
    assert got["r3@example.org"][:2] == ("sent", 3)
    assert handler.counts() == dict.fromkeys(set(PEOPLE) - failed, 1)
    assert report.finished
    assert sorted(e for e, _ in report.failures) == sorted(failed)


def test_a_reader_still_refused_after_max_attempts_fails_with_the_last_reply(
    store: Store,
) -> None:
    add_people(store, ["a@example.org", "b@example.org"])
    handler = FaultHandler(plan={"a@example.org": ["451"] * 10})
    with fault_server(handler) as server:
        cfg = smtp_settings(server.port, max_attempts=3)
        deliver_issue(cfg, store, 1, retry_base=0.01)
    got = rows(store)
    assert got["a@example.org"][0] == "failed"
    assert got["a@example.org"][1] == 3
    assert "gave up after 3 attempts: RCPT 451" in str(got["a@example.org"][2])
    assert got["b@example.org"][0] == "sent"
    assert handler.attempts["a@example.org"] == 3


def test_wrong_password_stops_the_run_and_leaves_everyone_pending(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_people(store, PEOPLE)
    ctx, cert = server_tls(tmp_path)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
    with fault_server(starttls=ctx, users={"digest": "right"}) as server:
        cfg = smtp_settings(
            server.port,
            security="starttls",
            username="digest",
            password_env="TEST_SMTP_PASSWORD",
            ca_file=str(cert),
        )
        with pytest.raises(FatalDeliveryError, match="authentication failed for digest"):
            deliver_issue(cfg, store, 1, retry_base=0.01)
        assert server.handler.delivered == []
    assert {st for st, _, _ in rows(store).values()} == {"pending"}
    assert unfinished_issues(store) == [1]


def test_starttls_with_the_private_ca_and_auth_delivers(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_people(store, PEOPLE[:3])
    ctx, cert = server_tls(tmp_path)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "right")
    with fault_server(starttls=ctx, users={"digest": "right"}) as server:
        cfg = smtp_settings(
            server.port,
            security="starttls",
            username="digest",
            password_env="TEST_SMTP_PASSWORD",
            ca_file=str(cert),
        )
        report = deliver_issue(cfg, store, 1)
    assert report.states["sent"] == 3
    assert server.handler.counts() == dict.fromkeys(PEOPLE[:3], 1)


def test_implicit_tls_verifies_the_certificate(store: Store, tmp_path: Path) -> None:
    add_people(store, PEOPLE[:3])
    ctx, cert = server_tls(tmp_path)
    with fault_server(tls=ctx) as server:
        untrusted = smtp_settings(server.port, security="tls")
        with pytest.raises(FatalDeliveryError, match="TLS failed"):
            deliver_issue(untrusted, store, 1)
        assert {st for st, _, _ in rows(store).values()} == {"pending"}
        trusted = smtp_settings(server.port, security="tls", ca_file=str(cert))
        report = deliver_issue(trusted, store, 1)
    assert report.states["sent"] == 3


def test_tls_to_a_plain_server_is_a_fatal_tls_error(store: Store) -> None:
    add_people(store, PEOPLE[:2])
    with fault_server() as server:
        cfg = smtp_settings(server.port, security="tls")
        with pytest.raises(FatalDeliveryError, match="TLS failed"):
            deliver_issue(cfg, store, 1)
    assert {st for st, _, _ in rows(store).values()} == {"pending"}


def test_an_unreachable_relay_stops_the_run_without_spending_attempts(store: Store) -> None:
    add_people(store, PEOPLE[:3])
    with fault_server() as server:
        port = server.port  # closed when the block ends: nothing listens there any more
    cfg = smtp_settings(port, max_attempts=2)
    with pytest.raises(TransientDeliveryError, match="cannot connect"):
        deliver_issue(cfg, store, 1, retry_base=0.01)
    assert {(st, n) for st, n, _ in rows(store).values()} == {("pending", 0)}
