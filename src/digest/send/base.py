"""What the pipeline hands a sender (``Job``), what comes back (``Result``), and backoff."""

from __future__ import annotations

import enum
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol


class Outcome(enum.StrEnum):
    #: The server answered 250 after DATA (or the outbox file is written).
    SENT = "sent"
    #: 4xx, dropped connection, timeout: try this recipient again later.
    TRANSIENT = "transient"
    #: 5xx on RCPT or DATA: this recipient failed for good.
    PERMANENT = "permanent"
    #: Never handed to the server (run stopping): the recipient keeps its previous state.
    NOT_SENT = "not_sent"


@dataclass(frozen=True, slots=True)
class Job:
    """One message for one recipient, ready to go on the wire."""

    delivery_id: int
    issue_number: int
    envelope_from: str
    recipient: str
    data: bytes
    message_id: str
    #: Attempts made before this one (for the retry decision).
    attempts: int = 0
    #: State the delivery row had before it was marked in flight (restored on NOT_SENT).
    prior_state: str = "pending"
    #: Fencing token of the claim this job was taken under (its row is written only with it).
    claim: int = 0


@dataclass(frozen=True, slots=True)
class Result:
    job: Job
    outcome: Outcome
    #: The server's reply or the failure, one line (never a password).
    error: str | None = None


ResultsCallback = Callable[[list[Result]], None]


#: Asked before each message goes out: may this job still be sent?
Admit = Callable[[Job], bool]


class Sender(Protocol):
    """Sends jobs and reports their results through ``on_results``.

    ``on_results`` may be called from the sender's own threads (never two at once), as soon as
    each result is known: recording it at once is what keeps the duplicate window small.

    ``send_all`` returns when every job taken from ``jobs`` has a result (or raises a
    DeliveryError after reporting them all, e.g. FatalDeliveryError on an auth failure).

    ``admit`` is asked right before each message is handed over (from the thread that sends
    it): False means the job may no longer be sent (its claim is gone). That job is reported
    NOT_SENT and the run stops, as on ``stop``.
    """

    def send_all(
        self,
        jobs: Iterable[Job],
        on_results: ResultsCallback,
        *,
        stop: threading.Event | None = None,
        admit: Admit | None = None,
    ) -> None: ...


def backoff_delay(attempt: int, base: float, cap: float = 300.0) -> float:
    """Exponential backoff with jitter: about base·2^(attempt-1), between half and all of it."""
    delay: float = min(cap, base * 2.0 ** max(0, attempt - 1))
    # Jitter spreads the retries of many recipients (and many connections) over time.
    return float(delay * random.uniform(0.5, 1.0))
