"""Bounces acted on: a hard bounce retires the address at once, soft ones after N within M days,
policy refusals are only counted, complaints and mailed unsubscribe requests unsubscribe; the
VERP return path maps a bounce to one delivery. Run as a user would: `digest bounces receive`."""

from __future__ import annotations

import email
import email.policy
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import Received, SMTPSink
from delivery_kit import SECRET, add_people, settings, store_issue
from digest.config import Settings
from digest.models import SubscriberStatus
from digest.pipeline.bounces import handle_message, return_path_for, verp_pattern
from digest.pipeline.deliver import deliver_issue
from digest.store import Store, open_store, schema
from digest.store import bounces as bstore
from digest.store import subscribers as subs
from digest.tokens import make_token, read_verp_token, verp_token

SAMPLES = Path(__file__).parent / "data" / "bounces"
SAMPLE_ID = b"<issue-1.0123456789abcdef0123456789abcdef@example.org>"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    return open_store(f"sqlite:///{tmp_path}/d.db")


def message_ids(store: Store) -> dict[str, str]:
    d, s = schema.deliveries, schema.subscribers
    with store.connect() as conn:
        rows = conn.execute(select(s.c.email, d.c.message_id).join(s, s.c.id == d.c.subscriber_id))
        return {str(e): str(m) for e, m in rows}


def status_of(store: Store, address: str) -> SubscriberStatus:
    with store.connect() as conn:
        rec = subs.get_by_email(conn, address)
    assert rec is not None
    return rec.status


def dsn(sample: str, *, to: str, message_id: str, report_id: str = "<r1@mx.example.org>") -> bytes:
    """A sample bounce about ``to``'s copy of a delivered message."""
    data = (SAMPLES / sample).read_bytes()
    data = data.replace(SAMPLE_ID, message_id.encode()).replace(b"ann@example.com", to.encode())
    head, _, body = data.partition(b"\n\n")
    lines = [ln for ln in head.split(b"\n") if not ln.lower().startswith(b"message-id:")]
    return b"\n".join([*lines, b"Message-ID: " + report_id.encode()]) + b"\n\n" + body


def delivered(store: Store, tmp_path: Path, people: list[str]) -> dict[str, str]:
    store_issue(store)
    add_people(store, people)
    deliver_issue(settings(delivery={"outbox_dir": str(tmp_path / "outbox")}), store, 1)
    return message_ids(store)


def test_a_hard_bounce_matched_by_message_id_marks_that_subscriber_bounced(
    store: Store, tmp_path: Path
) -> None:
    ids = delivered(store, tmp_path, ["ann@example.org", "bob@example.org"])
    cfg = settings()
    handled = handle_message(
        cfg,
        store,
        dsn("postfix-5.1.1.eml", to="someone@else.example", message_id=ids["ann@example.org"]),
    )
    assert handled.matched == 1
    assert handled.actions == ["ann@example.org: hard 5.1.1 -> bounced"]
    assert status_of(store, "ann@example.org") is SubscriberStatus.BOUNCED
    assert status_of(store, "bob@example.org") is SubscriberStatus.ACTIVE


def test_without_a_message_id_the_failed_recipient_and_latest_issue_match(
    store: Store, tmp_path: Path
) -> None:
    delivered(store, tmp_path, ["ann@example.org"])
    data = dsn("qmail.eml", to="x", message_id="<unknown@nowhere>").replace(
        b"heidi@example.net", b"ann@example.org"
    )
    handled = handle_message(settings(), store, data)
    assert handled.actions == ["ann@example.org: hard 5.1.1 -> bounced"]
    with store.connect() as conn:
        row = conn.execute(select(schema.bounces)).one()
    assert row.issue_id is not None


def test_soft_bounces_retire_an_address_only_after_n_within_the_window(
    store: Store, tmp_path: Path
) -> None:
    ids = delivered(store, tmp_path, ["ann@example.org"])
    cfg = settings(bounces={"soft_limit": 3, "soft_window": "10d"})
    start = datetime(2026, 12, 1, tzinfo=UTC)
    mid = ids["ann@example.org"]

    def soft(n: int, when: datetime) -> list[str]:
        data = dsn(
            "postfix-4.2.2-mailbox-full.eml",
            to="ann@example.org",
            message_id=mid,
            report_id=f"<soft{n}@mx>",
        )
        return handle_message(cfg, store, data, now=when).actions

    assert soft(1, start) == ["ann@example.org: soft 4.2.2 (1 of 3 soft bounces within 10d)"]
    # The same report read twice counts once.
    assert soft(1, start) == ["ann@example.org: soft 4.2.2 (already recorded)"]
    # Outside the window, the first one no longer counts.
    assert soft(2, start + timedelta(days=11)) == [
        "ann@example.org: soft 4.2.2 (1 of 3 soft bounces within 10d)"
    ]
    assert soft(3, start + timedelta(days=12))[0].endswith("(2 of 3 soft bounces within 10d)")
    assert status_of(store, "ann@example.org") is SubscriberStatus.ACTIVE
    assert soft(4, start + timedelta(days=13))[0].endswith("-> bounced (3 soft bounces within 10d)")
    assert status_of(store, "ann@example.org") is SubscriberStatus.BOUNCED


def test_a_policy_refusal_is_counted_and_the_address_kept(store: Store, tmp_path: Path) -> None:
    ids = delivered(store, tmp_path, ["frank@example.org"])
    data = (
        (SAMPLES / "gmail-5.7.1-policy.eml")
        .read_bytes()
        .replace(
            b"<issue-1.fedcba9876543210fedcba9876543210@example.org>",
            ids["frank@example.org"].encode(),
        )
        .replace(b"frank@gmail.com", b"frank@example.org")
    )
    handled = handle_message(settings(), store, data)
    assert handled.actions == [
        "frank@example.org: policy 5.7.26 (policy refusal: counted, address kept)"
    ]
    assert status_of(store, "frank@example.org") is SubscriberStatus.ACTIVE
    with store.connect() as conn:
        assert bstore.counts(conn)["policy"] == 1


def test_a_complaint_unsubscribes_the_complainant(store: Store, tmp_path: Path) -> None:
    ids = delivered(store, tmp_path, ["ann@example.org", "bob@example.org"])
    data = dsn("arf-complaint.eml", to="ann@example.org", message_id=ids["ann@example.org"])
    handled = handle_message(settings(), store, data)
    assert handled.actions == ["ann@example.org: complaint -> unsubscribed"]
    assert status_of(store, "ann@example.org") is SubscriberStatus.UNSUBSCRIBED
    assert status_of(store, "bob@example.org") is SubscriberStatus.ACTIVE


def test_the_list_unsubscribe_mailto_unsubscribes_when_it_arrives(
    store: Store, tmp_path: Path
) -> None:
    delivered(store, tmp_path, ["ann@example.org"])
    msg = email.message_from_bytes(
        (tmp_path / "outbox" / "1" / "ann@example.org.eml").read_bytes(),
        policy=email.policy.default,
    )
    mailto = next(u.strip(" <>") for u in str(msg["List-Unsubscribe"]).split(",") if "mailto:" in u)
    subject = mailto.split("subject=", 1)[1].replace("%20", " ")
    request = (
        f"From: ann@example.org\r\nTo: veille@news.example.org\r\nSubject: {subject}\r\n"
        "Message-ID: <req1@example.org>\r\n\r\n"
    ).encode()
    handled = handle_message(settings(), store, request)
    assert handled.actions == ["ann@example.org: unsubscribe -> unsubscribed"]
    assert status_of(store, "ann@example.org") is SubscriberStatus.UNSUBSCRIBED
    forged = request.replace(b"unsubscribe u.", b"unsubscribe x.")
    assert handle_message(settings(), store, forged).actions == []


def test_verp_tokens_are_signed_and_name_issue_and_subscriber() -> None:
    secret = SECRET.encode()
    token = verp_token(secret, 12, 345)
    assert read_verp_token(secret, token) == (12, 345)
    assert read_verp_token(secret, token.upper()) == (12, 345)  # MTAs may fold the case
    with pytest.raises(Exception, match="signature"):
        read_verp_token(secret, token.replace("12s", "13s"))
    with pytest.raises(Exception, match="signature"):
        read_verp_token(b"other secret", token)
    address = return_path_for(
        settings(delivery={"return_path": "bounces+{token}@news.example.org"}), secret, 12, 345
    )
    assert len(address.split("@")[0]) <= 64
    m = verp_pattern("bounces+{token}@news.example.org").fullmatch(address)
    assert m is not None
    assert m.group(1) == token


def verp_delivered(store: Store, smtp_sink: SMTPSink) -> tuple[Settings, dict[str, Received]]:
    """Issue 1 sent to ann and bob over SMTP with a VERP return path: the settings, and what
    the sink received per recipient."""
    store_issue(store)
    add_people(store, ["ann@example.org", "bob@example.org"])
    cfg = settings(
        delivery={"mode": "smtp", "return_path": "bounces+{token}@news.example.org"},
        smtp={"host": smtp_sink.host, "port": smtp_sink.port, "security": "none"},
    )
    deliver_issue(cfg, store, 1, retry_base=0.01)
    return cfg, {r.rcpt_tos[0]: r for r in smtp_sink.received}


def bare_bounce(envelope_recipient: str, message_id: str) -> bytes:
    """A qmail bounce that quotes nothing of the original: only its envelope recipient (our
    VERP return path) identifies it."""
    return (
        b"From: MAILER-DAEMON@mx.example.net\r\nTo: "
        + envelope_recipient.encode()
        + f"\r\nSubject: failure notice\r\nMessage-ID: <{message_id}>\r\n\r\n".encode()
        + b"Hi. This is the qmail-send program at mx.example.net.\r\n"
        b"I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        b"This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        b"<b.alias@example.net>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n"
    )


def test_with_a_verp_return_path_each_message_has_its_own_envelope_sender_and_bounces_map_back(
    store: Store, smtp_sink: SMTPSink
) -> None:
    cfg, sent = verp_delivered(store, smtp_sink)
    senders = {to: r.mail_from for to, r in sent.items()}
    assert len(set(senders.values())) == 2
    assert all(
        s.startswith("bounces+") and s.endswith("@news.example.org") for s in senders.values()
    )
    handled = handle_message(cfg, store, bare_bounce(senders["bob@example.org"], "b1@mx"))
    assert handled.actions == ["bob@example.org: hard 5.1.1 -> bounced"]
    assert status_of(store, "bob@example.org") is SubscriberStatus.BOUNCED


def test_the_outbox_shows_each_messages_return_path(store: Store, tmp_path: Path) -> None:
    store_issue(store)
    add_people(store, ["ann@example.org"])
    cfg = settings(
        delivery={
            "outbox_dir": str(tmp_path / "outbox"),
            "return_path": "bounces+{token}@news.example.org",
        }
    )
    deliver_issue(cfg, store, 1)
    first = (tmp_path / "outbox" / "1" / "ann@example.org.eml").read_bytes().split(b"\r\n")[0]
    assert re.fullmatch(rb"Return-Path: <bounces\+1s\d+-[0-9a-f]{16}@news\.example\.org>", first)


# ----------------------------------------------------------------------- as a user would


def digest(config: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "DIGEST_SECRET": SECRET}
    return subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_must_show_a_piped_hard_bounce_lists_the_subscriber_bounced_and_the_next_issue_skips_them(
    store: Store, tmp_path: Path
) -> None:
    ids = delivered(store, tmp_path, ["ann@example.org", "bob@example.org", "cleo@example.org"])
    config = tmp_path / "digest.toml"
    config.write_text(
        f'[digest]\ntitle = "Veille"\n[storage]\nurl = "sqlite:///{tmp_path}/d.db"\n'
        f'[delivery]\nfrom = "Veille <veille@news.example.org>"\noutbox_dir = "{tmp_path}/outbox"\n'
    )
    hard = dsn("postfix-5.1.1.eml", to="ann@example.org", message_id=ids["ann@example.org"])
    soft = dsn(
        "postfix-4.2.2-mailbox-full.eml",
        to="bob@example.org",
        message_id=ids["bob@example.org"],
        report_id="<r2@mx.example.org>",
    )
    done = digest(config, "bounces", "receive", stdin=hard)
    assert done.returncode == 0, done.stderr
    assert b"ann@example.org: hard 5.1.1 -> bounced" in done.stderr
    done = digest(config, "bounces", "receive", stdin=soft)
    assert done.returncode == 0, done.stderr
    listed = digest(config, "subscribers", "list", "--status", "bounced")
    assert listed.returncode == 0
    assert [ln.split(b"\t")[0] for ln in listed.stdout.splitlines()] == [b"ann@example.org"]
    # Not a bounce, or nothing matches: exit 0 with a log line.
    other = digest(config, "bounces", "receive", stdin=(SAMPLES / "autoreply.eml").read_bytes())
    assert other.returncode == 0
    assert b"not a bounce" in other.stderr
    stray = dsn("postfix-5.1.1.eml", to="nobody@example.org", message_id="<x@y>")
    nobody = digest(config, "bounces", "receive", stdin=stray)
    assert nobody.returncode == 0
    assert b"matches no subscriber" in nobody.stderr
    # The next issue skips the bounced address.
    store_issue(store, 2)
    deliver_issue(settings(delivery={"outbox_dir": str(tmp_path / "outbox")}), store, 2)
    assert sorted(p.name for p in (tmp_path / "outbox" / "2").glob("*.eml")) == [
        "bob@example.org.eml",
        "cleo@example.org.eml",
    ]
    status = digest(config, "status", "--json")
    assert b'"bounces"' in status.stdout


def test_receive_reads_the_envelope_recipient_an_mta_pipe_sets(
    store: Store, tmp_path: Path, smtp_sink: SMTPSink
) -> None:
    store_issue(store)
    add_people(store, ["ann@example.org"])
    cfg = settings(
        delivery={"mode": "smtp", "return_path": "bounces+{token}@news.example.org"},
        smtp={"host": smtp_sink.host, "port": smtp_sink.port, "security": "none"},
    )
    deliver_issue(cfg, store, 1, retry_base=0.01)
    [sent] = smtp_sink.received
    config = tmp_path / "digest.toml"
    config.write_text(
        f'[storage]\nurl = "sqlite:///{tmp_path}/d.db"\n[delivery]\n'
        'from = "Veille <veille@news.example.org>"\n'
        'return_path = "bounces+{token}@news.example.org"\n'
    )
    # Addressed to the plain mailbox, quoting nothing: only the pipe's envelope tells.
    bare = (
        b"From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@news.example.org\r\n"
        b"Subject: failure notice\r\nMessage-ID: <b9@mx>\r\n\r\n"
        b"Hi. This is the qmail-send program at mx.example.net.\r\n"
        b"I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        b"This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        b"<someone@example.net>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n"
    )
    env = {**os.environ, "DIGEST_SECRET": SECRET, "ORIGINAL_RECIPIENT": sent.mail_from}
    done = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(config), "bounces", "receive"],
        input=bare,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert b"ann@example.org: hard 5.1.1 -> bounced" in done.stderr


def test_receive_exits_75_without_its_secret_so_the_mta_keeps_the_bounce(tmp_path: Path) -> None:
    config = tmp_path / "digest.toml"
    config.write_text('[delivery]\nfrom = "Veille <veille@news.example.org>"\n')
    env = {k: v for k, v in os.environ.items() if k != "DIGEST_SECRET"}
    done = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(config), "bounces", "receive"],
        input=(SAMPLES / "postfix-5.1.1.eml").read_bytes(),
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 75
    assert b"DIGEST_SECRET is not set" in done.stderr


# On a PostgreSQL run the suite points every config's store at the run's database, so the
# unreachable address below would be replaced: the SQLite run covers it.
@pytest.mark.sqlite_only
def test_receive_exits_75_when_the_store_is_down(tmp_path: Path) -> None:
    config = tmp_path / "digest.toml"
    config.write_text(
        '[storage]\nurl = "postgresql+psycopg://digest@127.0.0.1:1/digest"\n'
        '[delivery]\nfrom = "Veille <veille@news.example.org>"\n'
    )
    done = digest(config, "bounces", "receive", stdin=(SAMPLES / "postfix-5.1.1.eml").read_bytes())
    assert done.returncode == 75, done.stderr
    assert b"try again later" in done.stderr


def test_a_token_from_the_unsubscribe_link_is_the_same_the_mailto_carries(store: Store) -> None:
    add_people(store, ["ann@example.org"])
    with store.connect() as conn:
        rec = subs.get_by_email(conn, "ann@example.org")
    assert rec is not None
    token = make_token(SECRET.encode(), "unsubscribe", rec.token_key)
    data = f"From: a@b\r\nSubject: unsubscribe {token}\r\nMessage-ID: <q@b>\r\n\r\n".encode()
    assert handle_message(settings(), store, data).actions == [
        "ann@example.org: unsubscribe -> unsubscribed"
    ]


def test_after_a_secret_rotation_mailed_unsubscribes_and_verp_bounces_of_older_issues_still_act(
    store: Store, smtp_sink: SMTPSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, sent = verp_delivered(store, smtp_sink)
    # The operator rotates the secret (docs/operations.md): the old one stays as the previous.
    monkeypatch.setenv("DIGEST_SECRET", "a-brand-new-secret-" + "y" * 24)
    monkeypatch.setenv("DIGEST_SECRET_PREVIOUS", SECRET)
    ann = sent["ann@example.org"].message()
    mailto = next(u.strip(" <>") for u in str(ann["List-Unsubscribe"]).split(",") if "mailto:" in u)
    subject = mailto.split("subject=", 1)[1].replace("%20", " ")
    request = (
        f"From: ann@example.org\r\nTo: veille@news.example.org\r\nSubject: {subject}\r\n"
        "Message-ID: <req2@example.org>\r\n\r\n"
    ).encode()
    assert handle_message(cfg, store, request).actions == [
        "ann@example.org: unsubscribe -> unsubscribed"
    ]
    bare = bare_bounce(sent["bob@example.org"].mail_from, "b2@mx")
    assert handle_message(cfg, store, bare).actions == ["bob@example.org: hard 5.1.1 -> bounced"]
