"""Delivering an issue: everyone once, resumable, consent respected, no empty issue."""

from __future__ import annotations

import email
import email.policy
import threading
from pathlib import Path

import pytest
from sqlalchemy import select, update

from delivery_kit import SECRET, add_people, settings, store_issue
from digest.models import DeliveryState, SubscriberStatus
from digest.pipeline.deliver import create_pending, deliver_issue, unfinished_issues
from digest.pipeline.messages import MessageFactory
from digest.store import Store, open_store, schema
from digest.store import subscribers as subs
from digest.store.issues import load_issue
from digest.tokens import read_token
from smtp_faults import fault_server


@pytest.fixture
def store(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    return open_store(db_url)


def states(store: Store) -> dict[str, str]:
    d, s = schema.deliveries, schema.subscribers
    with store.connect() as conn:
        rows = conn.execute(select(s.c.email, d.c.state).join(s, s.c.id == d.c.subscriber_id))
        return {str(e): str(st) for e, st in rows}


def test_outbox_gets_one_file_per_reader_and_the_issue_page(store: Store, tmp_path: Path) -> None:
    store_issue(store)
    add_people(store, ["ann@example.org", "bob@example.org", "Cleo@Example.org"])
    cfg = settings(delivery={"outbox_dir": str(tmp_path / "outbox")})
    report = deliver_issue(cfg, store, 1)
    files = sorted(p.name for p in (tmp_path / "outbox" / "1").iterdir())
    assert files == [
        "ann@example.org.eml",
        "bob@example.org.eml",
        "cleo@example.org.eml",
        "index.html",
    ]
    assert report.sent == 3
    assert report.states["sent"] == 3
    assert report.finished
    assert unfinished_issues(store) == []


def test_sending_the_same_issue_again_reaches_nobody_twice(store: Store, tmp_path: Path) -> None:
    store_issue(store)
    add_people(store, ["ann@example.org", "bob@example.org"])
    cfg = settings(delivery={"outbox_dir": str(tmp_path / "outbox")})
    deliver_issue(cfg, store, 1)
    again = deliver_issue(cfg, store, 1)
    assert again.sent == 0
    assert again.states["sent"] == 2


def test_a_delivered_issue_leaves_no_rendered_templates_behind(
    store: Store, tmp_path: Path
) -> None:
    # A daemon sends issue after issue for months: the templates split for personalizing one
    # issue (~100 KB each) must go with it, not pile up in the process.
    from digest.render.personal import _split

    store_issue(store)
    add_people(store, ["ann@example.org", "bob@example.org"])
    cfg = settings(delivery={"outbox_dir": str(tmp_path / "outbox")})
    assert deliver_issue(cfg, store, 1).sent == 2
    assert _split.cache_info().currsize == 0


def test_dry_run_records_and_sends_nothing(store: Store, tmp_path: Path) -> None:
    store_issue(store)
    add_people(store, ["ann@example.org", "bob@example.org"])
    cfg = settings(delivery={"outbox_dir": str(tmp_path / "outbox")})
    report = deliver_issue(cfg, store, 1, dry_run=True)
    assert report.would_send == 2
    assert states(store) == {}
    assert not (tmp_path / "outbox").exists()


def test_someone_who_unsubscribes_after_the_issue_started_gets_nothing(
    store: Store, tmp_path: Path
) -> None:
    store_issue(store)
    add_people(store, ["ann@example.org", "bob@example.org"])
    cfg = settings(delivery={"outbox_dir": str(tmp_path / "outbox")})
    with store.connect() as conn:
        issue = load_issue(conn, 1)
    create_pending(store, issue.id, MessageFactory(cfg, issue.content, SECRET.encode()))
    with store.begin() as conn:
        bob = subs.get_by_email(conn, "bob@example.org")
        assert bob is not None
        subs.unsubscribe(conn, bob.id)
    report = deliver_issue(cfg, store, 1)
    assert states(store) == {"ann@example.org": "sent", "bob@example.org": "skipped"}
    assert report.skipped == 1
    assert not (tmp_path / "outbox" / "1" / "bob@example.org.eml").exists()


def test_a_topic_subset_gets_only_its_sections_and_nobody_an_empty_issue(
    store: Store, tmp_path: Path
) -> None:
    store_issue(store)
    add_people(store, ["dp@example.org"], topics="data_protection")
    add_people(store, ["none@example.org"], topics="cooking")
    cfg = settings(delivery={"outbox_dir": str(tmp_path / "outbox")})
    deliver_issue(cfg, store, 1)
    assert states(store) == {"dp@example.org": "sent", "none@example.org": "skipped"}
    text = (tmp_path / "outbox" / "1" / "dp@example.org.eml").read_bytes()
    msg = email.message_from_bytes(text, policy=email.policy.default)
    body = msg.get_body(("plain",))
    assert body is not None
    content = body.get_content()
    assert "La CNIL publie ses recommandations" in content
    assert "Une page se tourne" not in content


def test_smtp_delivery_reaches_each_reader_once_with_working_unsubscribe_links(
    store: Store,
) -> None:
    store_issue(store)
    people = [f"reader{i}@example.org" for i in range(30)]
    add_people(store, people)
    with fault_server() as server:
        cfg = settings(
            digest={"base_url": "https://news.example.org"},
            delivery={"mode": "smtp"},
            smtp={"host": server.host, "port": server.port, "security": "none", "connections": 3},
        )
        report = deliver_issue(cfg, store, 1, retry_base=0.01)
    counts = server.handler.counts()
    assert counts == dict.fromkeys(people, 1)
    assert report.states["sent"] == 30
    # Each connection carried many messages.
    assert server.handler.connections <= 3
    msg = server.handler.delivered[0].message()
    link = msg["List-Unsubscribe"].split(",")[0].strip(" <>")
    assert link.startswith("https://news.example.org/unsubscribe/")
    key = read_token(SECRET.encode(), link.rsplit("/", 1)[1], "unsubscribe", msg["Date"].datetime)
    with store.connect() as conn:
        who = subs.get_by_token_key(conn, key)
        assert who is not None
        assert who.email == msg["To"].addresses[0].addr_spec
        mid = conn.execute(
            select(schema.deliveries.c.message_id).where(
                schema.deliveries.c.subscriber_id == who.id
            )
        ).scalar()
    assert msg["Message-ID"] == mid


def test_messages_left_in_flight_by_a_crash_are_resent_with_the_same_message_id(
    store: Store,
) -> None:
    store_issue(store)
    add_people(store, ["ann@example.org", "bob@example.org", "cleo@example.org"])
    with fault_server() as server:
        cfg = settings(
            delivery={"mode": "smtp"},
            smtp={"host": server.host, "port": server.port, "security": "none"},
        )
        with store.connect() as conn:
            issue = load_issue(conn, 1)
        create_pending(store, issue.id, MessageFactory(cfg, issue.content, SECRET.encode()))
        with store.begin() as conn:  # as a SIGKILL after "mark in flight" leaves it
            conn.execute(update(schema.deliveries).values(state=DeliveryState.UNKNOWN.value))
            before = dict(
                conn.execute(select(schema.deliveries.c.id, schema.deliveries.c.message_id)).all()
            )
        report = deliver_issue(cfg, store, 1)
    assert report.resent_unknown == 3
    assert report.states["sent"] == 3
    assert sorted(d.message()["Message-ID"] for d in server.handler.delivered) == sorted(
        before.values()
    )


def test_stop_finishes_the_current_message_and_a_rerun_completes_the_issue(
    store: Store,
) -> None:
    store_issue(store)
    people = [f"p{i}@example.org" for i in range(40)]
    add_people(store, people)
    stop = threading.Event()

    def progress(done: int, total: int) -> None:
        if done >= 5:
            stop.set()

    with fault_server() as server:
        cfg = settings(
            delivery={"mode": "smtp"},
            smtp={"host": server.host, "port": server.port, "security": "none"},
        )
        first = deliver_issue(cfg, store, 1, progress=progress, stop=stop)
        assert first.stopped
        assert not first.finished
        assert 5 <= first.states["sent"] < 40
        assert first.states["unknown"] == 0
        assert unfinished_issues(store) == [1]
        second = deliver_issue(cfg, store, 1)
    assert second.finished
    assert server.handler.counts() == dict.fromkeys(people, 1)
    assert unfinished_issues(store) == []


def test_unsubscribed_people_get_no_row_at_all(store: Store, tmp_path: Path) -> None:
    store_issue(store)
    add_people(store, ["gone@example.org"], status=SubscriberStatus.UNSUBSCRIBED)
    add_people(store, ["ann@example.org"])
    cfg = settings(delivery={"outbox_dir": str(tmp_path / "outbox")})
    deliver_issue(cfg, store, 1)
    assert states(store) == {"ann@example.org": "sent"}


def test_dkim_signed_messages_verify_on_arrival(store: Store, tmp_path: Path) -> None:
    import base64

    import dkim
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "dkim.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    txt = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
    store_issue(store)
    add_people(store, ["ann@example.org", "bob@example.org"])
    with fault_server() as server:
        cfg = settings(
            digest={"base_url": "https://news.example.org"},
            delivery={"mode": "smtp"},
            smtp={"host": server.host, "port": server.port, "security": "none"},
            dkim={"selector": "s1", "domain": "news.example.org", "key_file": str(pem)},
        )
        deliver_issue(cfg, store, 1)
    assert len(server.handler.delivered) == 2
    for d in server.handler.delivered:
        assert dkim.verify(d.data, dnsfunc=lambda name, timeout=5: txt)
