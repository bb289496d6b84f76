"""Delivery claims (store/claims.py): disjoint batches, tokens that only grow, and a stale
sender whose writes change nothing once another sender holds its rows."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta

import psutil
import pytest
from sqlalchemy import Connection, select

from delivery_kit import add_people, store_issue
from digest.models import DeliveryState
from digest.store import Store, open_store, schema
from digest.store import claims as cl
from digest.store.deliveries import insert_pending
from digest.store.holders import this_process

D = schema.deliveries
NOW = datetime.now(UTC)
LEASE = timedelta(seconds=30)


@pytest.fixture
def store(db_url: str) -> Store:
    return open_store(db_url)


def _issue_with(store: Store, n: int) -> int:
    store_issue(store)
    add_people(store, [f"p{i:04d}@example.org" for i in range(n)])
    with store.begin() as conn:
        issue_id = conn.execute(select(schema.issues.c.id)).scalar_one()
        sids = conn.execute(select(schema.subscribers.c.id)).scalars().all()
        insert_pending(conn, issue_id, [(s, f"<m{s}@x>") for s in sids], NOW)
    return int(issue_id)


def _claim(store: Store, issue_id: int, owner: str, *, limit: int, now: datetime = NOW) -> tuple:
    with store.begin() as conn:
        token = cl.next_token(conn)
        rows = cl.claim(
            conn, issue_id, token=token, owner=owner, until=now + LEASE, now=now, limit=limit
        )
    return token, rows


def test_tokens_only_grow(store: Store) -> None:
    with store.begin() as conn:
        first = cl.next_token(conn)
    with store.begin() as conn:
        second, third = cl.next_token(conn), cl.next_token(conn)
    assert first < second < third


def test_two_senders_claim_disjoint_batches_until_nothing_is_left(store: Store) -> None:
    issue_id = _issue_with(store, 25)
    a_token, a = _claim(store, issue_id, "a", limit=10)
    b_token, b = _claim(store, issue_id, "b", limit=10)
    c_token, c = _claim(store, issue_id, "c", limit=10)
    ids = [r.id for r in a + b + c]
    assert len(a) == len(b) == 10
    assert len(c) == 5
    assert len(set(ids)) == 25
    assert a_token < b_token < c_token
    assert _claim(store, issue_id, "d", limit=10)[1] == []


def test_a_stale_sender_can_neither_send_nor_record_once_its_rows_were_taken(
    store: Store,
) -> None:
    issue_id = _issue_with(store, 4)
    old_token, rows = _claim(store, issue_id, "frozen", limit=4)
    with store.begin() as conn:
        assert cl.admit(conn, rows[0].id, token=old_token, until=NOW + LEASE, now=NOW)
    # The frozen sender's claim runs out; another sender takes every row, in flight first.
    later = NOW + LEASE + timedelta(seconds=1)
    new_token, taken = _claim(store, issue_id, "second", limit=10, now=later)
    assert {r.id for r in taken} == {r.id for r in rows}
    assert taken[0].state is DeliveryState.UNKNOWN  # the ambiguous one is resent first
    with store.begin() as conn:
        # Thawed: it may not mark another row in flight...
        assert not cl.admit(conn, rows[1].id, token=old_token, until=later + LEASE, now=later)
        # ...and what it would record (a late "sent" or a failure) changes nothing.
        failed = {"id": rows[0].id, "state": DeliveryState.FAILED, "last_error": "550"}
        assert cl.apply(conn, [failed], token=old_token, now=later) == 0
        sent = {"id": rows[0].id, "state": DeliveryState.SENT, "attempts": 1}
        assert cl.apply(conn, [sent], token=new_token, now=later) == 1
        row = conn.execute(select(D.c.state, D.c.claim_token).where(D.c.id == rows[0].id)).one()
    assert (row.state, row.claim_token) == ("sent", None)


def test_claims_of_a_sender_seen_dead_on_this_host_are_released(store: Store) -> None:
    issue_id = _issue_with(store, 6)
    pid = 4_000_000
    while psutil.pid_exists(pid):
        pid -= 1
    dead = dataclasses.replace(this_process("x"), pid=pid).encode()
    alive = this_process("y").encode()
    _claim(store, issue_id, dead, limit=3)
    _claim(store, issue_id, alive, limit=3)
    with store.begin() as conn:
        assert cl.release_dead(conn) == [dead]
        assert cl.claimed_by(conn, issue_id) == {alive: 3}
    # Their rows can be claimed again at once, the live sender's cannot.
    assert len(_claim(store, issue_id, "next", limit=10)[1]) == 3


def test_senders_claiming_at_the_same_time_never_share_a_row(store: Store) -> None:
    issue_id = _issue_with(store, 300)
    got: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        mine: list[int] = []
        try:
            while True:
                _, rows = _claim(store, issue_id, name, limit=7)
                if not rows:
                    break
                mine += [r.id for r in rows]
                with store.begin() as conn:
                    for r in rows:
                        assert cl.admit(
                            conn, r.id, token=_token_of(conn, r.id), until=NOW + LEASE, now=NOW
                        )
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        got[name] = mine

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    every = [i for ids in got.values() for i in ids]
    assert len(every) == len(set(every)) == 300


def _token_of(conn: Connection, row_id: int) -> int:
    return int(conn.execute(select(D.c.claim_token).where(D.c.id == row_id)).scalar_one())
