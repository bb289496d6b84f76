"""The delivery state machine (send/transitions.py): its invariants hold for any sequence of
events, so the exactly-once rule lives in one tested place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.models import DeliveryState
from digest.send.transitions import (
    FINAL,
    OPEN,
    Event,
    IllegalTransition,
    RetryPolicy,
    transition,
)

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
OUTCOMES = [Event.SENT, Event.TRANSIENT, Event.PERMANENT, Event.NOT_SENT]

open_states = st.sampled_from(sorted(OPEN))
policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 10),
    base=st.floats(0.1, 60),
    cap=st.floats(1, 600),
)


@given(
    state=open_states,
    event=st.sampled_from(list(Event)),
    attempts=st.integers(0, 20),
    policy=policies,
    jitter=st.floats(0.5, 1.0),
)
def test_attempts_never_decrease_and_grow_only_when_a_message_was_handed_over(
    state: DeliveryState, event: Event, attempts: int, policy: RetryPolicy, jitter: float
) -> None:
    t = transition(state, event, attempts, NOW, policy=policy, error="451 later", jitter=jitter)
    handed_over = event in (Event.SENT, Event.TRANSIENT, Event.PERMANENT)
    assert t.attempts == attempts + (1 if handed_over else 0)


@given(state=open_states, attempts=st.integers(0, 20), policy=policies)
def test_only_a_250_makes_a_row_sent(
    state: DeliveryState, attempts: int, policy: RetryPolicy
) -> None:
    for event in Event:
        t = transition(state, event, attempts, NOW, policy=policy)
        assert (t.state is DeliveryState.SENT) == (event is Event.SENT)
        if t.state is DeliveryState.SENT:
            assert t.sent_at == NOW
            assert t.final


@given(state=open_states, attempts=st.integers(0, 20), policy=policies)
def test_admitting_marks_the_row_in_flight_and_keeps_its_claim(
    state: DeliveryState, attempts: int, policy: RetryPolicy
) -> None:
    t = transition(state, Event.ADMIT, attempts, NOW, policy=policy)
    assert t.state is DeliveryState.UNKNOWN
    assert not t.release
    assert not t.final


@given(state=open_states, attempts=st.integers(0, 20), policy=policies)
def test_a_message_never_handed_over_leaves_the_row_as_it_was(
    state: DeliveryState, attempts: int, policy: RetryPolicy
) -> None:
    t = transition(state, Event.NOT_SENT, attempts, NOW, policy=policy)
    assert (t.state, t.attempts, t.final, t.release) == (state, attempts, False, True)


@given(
    state=open_states,
    attempts=st.integers(0, 20),
    policy=policies,
    jitter=st.floats(0.5, 1.0),
)
def test_a_temporary_failure_retries_later_with_backoff_until_max_attempts_then_fails(
    state: DeliveryState, attempts: int, policy: RetryPolicy, jitter: float
) -> None:
    t = transition(
        state, Event.TRANSIENT, attempts, NOW, policy=policy, error="451 later", jitter=jitter
    )
    if attempts + 1 >= policy.max_attempts:
        assert t.state is DeliveryState.FAILED
        assert t.final
        assert t.last_error == f"gave up after {attempts + 1} attempts: 451 later"
    else:
        assert t.state is DeliveryState.RETRY
        assert not t.final
        assert t.next_attempt is not None
        delay = (t.next_attempt - NOW).total_seconds()
        full = min(policy.cap, policy.base * 2.0**attempts)
        assert full * 0.5 - 1e-6 <= delay <= full + 1e-6


@given(
    events=st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=30),
    policy=policies,
)
def test_any_run_of_replies_ends_in_at_most_one_final_state_and_stays_there(
    events: list[Event], policy: RetryPolicy
) -> None:
    state, attempts = DeliveryState.PENDING, 0
    for event in events:
        if state in FINAL:
            with pytest.raises(IllegalTransition):
                transition(state, event, attempts, NOW, policy=policy)
            continue
        admitted = transition(state, Event.ADMIT, attempts, NOW, policy=policy)
        assert admitted.state is DeliveryState.UNKNOWN
        # The reply is judged against the state before admission (``prior``).
        t = transition(state, event, attempts, NOW, policy=policy)
        assert t.attempts >= attempts
        assert (
            t.attempts <= policy.max_attempts
            or t.state is DeliveryState.FAILED
            or (event is Event.NOT_SENT)
        )
        state, attempts = t.state, t.attempts
    assert state in OPEN | FINAL


@pytest.mark.parametrize("state", sorted(FINAL))
def test_a_finished_row_takes_no_event(state: DeliveryState) -> None:
    for event in Event:
        with pytest.raises(IllegalTransition):
            transition(state, event, 1, NOW, policy=RetryPolicy(5, 5.0))


def test_changes_are_the_columns_the_store_writes() -> None:
    policy = RetryPolicy(5, 5.0)
    sent = transition(DeliveryState.UNKNOWN, Event.SENT, 2, NOW, policy=policy).changes()
    assert sent == {
        "state": DeliveryState.SENT,
        "attempts": 3,
        "sent_at": NOW,
        "last_error": None,
        "next_attempt": None,
    }
    retry = transition(
        DeliveryState.PENDING, Event.TRANSIENT, 0, NOW, policy=policy, error="451", jitter=1.0
    ).changes()
    assert retry == {
        "state": DeliveryState.RETRY,
        "attempts": 1,
        "next_attempt": NOW + timedelta(seconds=5),
        "last_error": "451",
    }
    skipped = transition(
        DeliveryState.PENDING, Event.SKIP, 0, NOW, policy=policy, error="unsubscribed"
    ).changes()
    assert skipped == {"state": DeliveryState.SKIPPED, "attempts": 0, "last_error": "unsubscribed"}
