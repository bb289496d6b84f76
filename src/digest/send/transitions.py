"""The delivery state machine as one pure function: ``transition(state, event, attempts, now)``.

Every change to a delivery row is decided here (the exactly-once rule in one place); the store
only writes what it returns, and only while the sender still holds the row's claim.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from digest.models import DeliveryState
from digest.send.base import Outcome, backoff_delay

#: States that still need a message to be handed over (a sender may claim them).
OPEN = frozenset({DeliveryState.PENDING, DeliveryState.RETRY, DeliveryState.UNKNOWN})
#: States no event ever leaves.
FINAL = frozenset({DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.SKIPPED})


class Event(enum.StrEnum):
    """What happened to one row's message."""

    #: About to be handed to the relay: the row is marked in flight first.
    ADMIT = "admit"
    #: Not sent on purpose (unsubscribed meanwhile, no section for the reader's topics).
    SKIP = "skip"
    SENT = Outcome.SENT.value
    TRANSIENT = Outcome.TRANSIENT.value
    PERMANENT = Outcome.PERMANENT.value
    NOT_SENT = Outcome.NOT_SENT.value


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    #: First retry delay in seconds (doubles per attempt, with jitter).
    base: float
    cap: float = 300.0


@dataclass(frozen=True, slots=True)
class Transition:
    """The row after an event. ``attempts`` counts messages handed over (never decreases)."""

    state: DeliveryState
    attempts: int
    next_attempt: datetime | None = None
    last_error: str | None = None
    sent_at: datetime | None = None
    #: Whether this event ends the row's delivery for this issue.
    final: bool = False
    #: Whether the row's claim is given back with this write (nothing more to do for now).
    release: bool = True

    def changes(self) -> dict[str, Any]:
        """The columns to write (a row keeps ``sent_at``/``next_attempt`` it has not changed)."""
        out: dict[str, Any] = {"state": self.state, "attempts": self.attempts}
        if self.state is DeliveryState.SENT:
            out |= {"sent_at": self.sent_at, "last_error": None, "next_attempt": None}
        elif self.state is DeliveryState.RETRY and self.next_attempt is not None:
            out |= {"next_attempt": self.next_attempt, "last_error": self.last_error}
        elif self.state in (DeliveryState.FAILED, DeliveryState.SKIPPED):
            out["last_error"] = self.last_error
        return out


class IllegalTransition(ValueError):
    """An event that cannot happen to a row in that state (a bug, never a relay's reply)."""


def transition(
    state: DeliveryState,
    event: Event,
    attempts: int,
    now: datetime,
    *,
    policy: RetryPolicy,
    error: str | None = None,
    jitter: float | None = None,
) -> Transition:
    """The row's next state. ``state`` is the row's state before it was handed over (its
    ``prior`` state for every event but ADMIT); ``jitter`` in [0.5, 1] fixes the backoff's
    random factor (tests)."""
    if state not in OPEN:
        raise IllegalTransition(f"a {state.value} row takes no {event.value} event")
    if attempts < 0:
        raise IllegalTransition("attempts cannot be negative")
    if event is Event.ADMIT:
        return Transition(DeliveryState.UNKNOWN, attempts, release=False)
    if event is Event.NOT_SENT:
        # Never handed over: nothing happened, no attempt is charged.
        return Transition(state, attempts)
    if event is Event.SKIP:
        return Transition(DeliveryState.SKIPPED, attempts, last_error=error, final=True)
    tried = attempts + 1
    if event is Event.SENT:
        return Transition(DeliveryState.SENT, tried, sent_at=now, final=True)
    if event is Event.PERMANENT:
        return Transition(DeliveryState.FAILED, tried, last_error=error or "refused", final=True)
    # TRANSIENT: retried with backoff until max_attempts, then failed with the last reply.
    if tried >= policy.max_attempts:
        reason = f"gave up after {tried} attempts: {error or 'temporary failure'}"
        return Transition(DeliveryState.FAILED, tried, last_error=reason, final=True)
    if jitter is None:
        delay = backoff_delay(tried, policy.base, policy.cap)
    else:
        delay = min(policy.cap, policy.base * 2.0 ** max(0, tried - 1)) * jitter
    return Transition(
        DeliveryState.RETRY,
        tried,
        next_attempt=now + timedelta(seconds=delay),
        last_error=error,
    )
