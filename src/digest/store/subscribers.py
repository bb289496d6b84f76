"""Subscribers and consent: add/import, look up, stream, status, preferences, export, erase.

Addresses are validated with email-validator (no DNS) and unique through ``email_key`` (domain
and local part lower-cased, never case-folded); erased people leave only a keyed hash in
``erased`` so a re-import skips them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Connection, RowMapping, and_, delete, func, insert, or_, select, update

from digest.errors import UsageError
from digest.models import Subscriber, SubscriberStatus
from digest.store import schema
from digest.tokens import keyed_hash, new_token_key

log = logging.getLogger(__name__)

T = schema.subscribers
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")
# Control characters (C0, DEL, C1) and line/paragraph separators: never part of a name.
_NAME_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: Longer names are cut: a name is a greeting and a display name, not a document.
MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class SubscriberRecord:
    """A subscriber row as stored, including the consent timestamps and the token key."""

    id: int
    email: str
    name: str | None
    status: SubscriberStatus
    topics: tuple[str, ...]
    language: str | None
    token_key: str
    created: datetime
    confirmed_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    confirm_sent_at: datetime | None = None
    source: str | None = None

    def to_model(self) -> Subscriber:
        return Subscriber(
            id=self.id,
            email=self.email,
            name=self.name,
            status=self.status,
            topics=self.topics,
            language=self.language,
        )


# --------------------------------------------------------------------------- addresses


def normalize_email(address: str) -> str:
    """The address as email-validator normalizes it; UsageError naming it when invalid."""
    if "\ufffd" in address:
        # U+FFFD is what a decoder leaves for bytes that were not UTF-8: not the address sent.
        raise UsageError(
            f"{address.strip()!r} is not a valid email address: "
            "it holds bytes that are not UTF-8 text"
        )
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise UsageError(f"{address.strip()!r} is not a valid email address: {exc}") from None


def email_key(address: str) -> str:
    """The identity of an address: two addresses are one person when their keys are equal.

    The rule (docs/subscribers.md): the address as email-validator normalizes it (Unicode NFC,
    the domain in its normalized lower-case form), then the domain *and* the local part
    lower-cased with ``str.lower``. So ``Ann@X.org`` == ``ann@x.org``, but never with case
    folding: ``STRASSE@`` and ``straße@`` are two people (``casefold`` maps ß to ss), as are
    ``ǅ``/``ǆ``-style pairs that only folding would merge. Dots and ``+tags`` are kept: what a
    provider ignores is the provider's rule, not the address's.
    """
    try:
        normalized = validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        normalized = address.strip()
    local, at, domain = normalized.rpartition("@")
    if not at:
        return normalized.lower()
    return f"{local.lower()}@{domain.lower()}"


def legacy_email_key(address: str) -> str:
    """The key before issue 10 (``casefold``): only to recognise erased-address hashes made then."""
    try:
        normalized = validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        normalized = address.strip()
    return normalized.casefold()


#: ``erased.key_rule`` of hashes made from ``email_key``; "casefold" marks the older ones.
KEY_RULE = "lower"
LEGACY_KEY_RULE = "casefold"


def erased_hash(secret: bytes, address: str) -> str:
    """Keyed hash kept for an erased address: recognizable again, not readable."""
    return keyed_hash(secret, email_key(address), purpose="erased")


def erased_condition(secret: bytes, address: str, previous: bytes | None = None) -> Any:
    """SQL matching the ``erased`` rows of ``address``: its hash under the current rule, or for
    markers made before it, under the casefold rule; with the current secret or ``previous``
    (the secret before a rotation), so an erased address stays erased across both changes."""
    e = schema.erased.c
    keys = [secret] if previous is None or previous == secret else [secret, previous]
    current = [keyed_hash(k, email_key(address), purpose="erased") for k in keys]
    legacy = [keyed_hash(k, legacy_email_key(address), purpose="erased") for k in keys]
    return or_(
        and_(e.key_rule == KEY_RULE, e.email_hash.in_(current)),
        and_(e.key_rule == LEGACY_KEY_RULE, e.email_hash.in_(legacy)),
    )


def clean_name(name: str | None) -> str | None:
    """A person's name as stored: control characters and line breaks become spaces, runs of
    spaces one, at most ``MAX_NAME`` characters; None when nothing is left.

    ``"Evil\\r\\nX: 1"`` -> ``"Evil X: 1"``: a name ends up in a mail header and in the
    tab-separated ``subscribers list``, where a line break would forge a header or a row.
    """
    cleaned = " ".join(_NAME_CONTROLS.sub(" ", name or "").split())[:MAX_NAME].strip()
    return cleaned or None


def parse_topics(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"a; b"`` or an iterable -> ("a", "b"), de-duplicated, order kept; empty means all."""
    if value is None:
        return ()
    parts = value.split(";") if isinstance(value, str) else list(value)
    out: list[str] = []
    for p in parts:
        p = p.strip()
        if p and p not in out:
            out.append(p)
    return tuple(out)


def check_language(language: str | None, allowed: Collection[str] | None) -> str | None:
    if language is None or not language.strip():
        return None
    lang = language.strip().lower().replace("_", "-")
    if not _LANGUAGE.match(lang) or (allowed is not None and lang not in allowed):
        expected = f" (expected one of {', '.join(sorted(allowed))})" if allowed else ""
        raise UsageError(f"unknown language {language!r}{expected}")
    return lang


def check_topics(topics: tuple[str, ...], known: Collection[str] | None) -> tuple[str, ...]:
    if known is not None:
        for t in topics:
            if t not in known:
                raise UsageError(f"unknown topic {t!r} (known: {', '.join(sorted(known))})")
    return topics


# --------------------------------------------------------------------------- rows


def _utc(value: datetime | None) -> datetime | None:
    """Aware UTC from the database (SQLite hands naive UTC back)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def aware_now(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; use timezone-aware UTC")
    return value.astimezone(UTC)


def _record(row: RowMapping) -> SubscriberRecord:
    return SubscriberRecord(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        status=SubscriberStatus(row["status"]),
        topics=parse_topics(row["topics"]),
        language=row["language"],
        token_key=row["token_key"],
        created=_utc(row["created"]) or datetime.min.replace(tzinfo=UTC),
        confirmed_at=_utc(row["confirmed_at"]),
        unsubscribed_at=_utc(row["unsubscribed_at"]),
        confirm_sent_at=_utc(row["confirm_sent_at"]),
        source=row["source"],
    )


def new_row(
    address: str,
    *,
    name: str | None,
    topics: tuple[str, ...],
    language: str | None,
    status: SubscriberStatus,
    source: str,
    now: datetime,
) -> dict[str, Any]:
    return {
        "email": address,
        "email_key": email_key(address),
        "name": clean_name(name),
        "status": status.value,
        "topics": ";".join(topics),
        "language": language,
        "created": now,
        "confirmed_at": now if status is SubscriberStatus.ACTIVE else None,
        "source": source,
        "token_key": new_token_key(),
    }


def add_subscriber(
    conn: Connection,
    address: str,
    *,
    name: str | None = None,
    topics: Iterable[str] | str | None = None,
    language: str | None = None,
    status: SubscriberStatus = SubscriberStatus.ACTIVE,
    source: str = "cli",
    now: datetime | None = None,
    known_topics: Collection[str] | None = None,
    languages: Collection[str] | None = None,
) -> SubscriberRecord:
    """Insert one subscriber; UsageError if the address is invalid or already present.

    This does not consult ``erased``: an explicit new sign-up is new consent (see
    ``is_erased`` / ``forget_erasure`` for callers that must decide).
    """
    normalized = normalize_email(address)
    if get_by_email(conn, normalized) is not None:
        raise UsageError(f"{normalized}: already a subscriber")
    values = new_row(
        normalized,
        name=name,
        topics=check_topics(parse_topics(topics), known_topics),
        language=check_language(language, languages),
        status=status,
        source=source,
        now=aware_now(now),
    )
    new_id = conn.execute(insert(T).values(**values)).inserted_primary_key
    assert new_id is not None
    found = get_by_id(conn, int(new_id[0]))
    assert found is not None
    return found


def get_by_id(conn: Connection, subscriber_id: int) -> SubscriberRecord | None:
    row = conn.execute(select(T).where(T.c.id == subscriber_id)).mappings().first()
    return _record(row) if row else None


def get_by_email(conn: Connection, address: str) -> SubscriberRecord | None:
    """Look up by address, whatever its case."""
    row = conn.execute(select(T).where(T.c.email_key == email_key(address))).mappings().first()
    return _record(row) if row else None


def get_by_token_key(conn: Connection, token_key: str) -> SubscriberRecord | None:
    row = conn.execute(select(T).where(T.c.token_key == token_key)).mappings().first()
    return _record(row) if row else None


def list_subscribers(
    conn: Connection, *, status: SubscriberStatus | None = None, batch: int = 1000
) -> Iterator[SubscriberRecord]:
    """Every subscriber (or those with ``status``) in id order, streamed ``batch`` at a time."""
    query = select(T).order_by(T.c.id)
    if status is not None:
        query = query.where(T.c.status == status.value)
    result = conn.execution_options(yield_per=batch).execute(query).mappings()
    for row in result:
        yield _record(row)


def active_subscribers(conn: Connection, batch: int = 1000) -> Iterator[Subscriber]:
    """The people an issue goes to, streamed (never all in memory)."""
    for rec in list_subscribers(conn, status=SubscriberStatus.ACTIVE, batch=batch):
        yield rec.to_model()


def count_by_status(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(T.c.status, func.count()).group_by(T.c.status)).all()
    return {str(status): int(n) for status, n in rows}


def set_status(
    conn: Connection, subscriber_id: int, status: SubscriberStatus, now: datetime | None = None
) -> bool:
    """Change a subscriber's status, stamping when consent was given or withdrawn."""
    now = aware_now(now)
    values: dict[str, Any] = {"status": status.value}
    if status is SubscriberStatus.ACTIVE:
        values["confirmed_at"] = now
        values["unsubscribed_at"] = None
    elif status is SubscriberStatus.UNSUBSCRIBED:
        values["unsubscribed_at"] = now
    return conn.execute(update(T).where(T.c.id == subscriber_id).values(**values)).rowcount > 0


def unsubscribe(conn: Connection, subscriber_id: int, now: datetime | None = None) -> bool:
    """Withdraw consent; idempotent (the first unsubscription time is kept)."""
    rec = get_by_id(conn, subscriber_id)
    if rec is None:
        return False
    if rec.status is SubscriberStatus.UNSUBSCRIBED:
        return True
    return set_status(conn, subscriber_id, SubscriberStatus.UNSUBSCRIBED, now)


def mark_confirm_sent(conn: Connection, subscriber_id: int, now: datetime) -> None:
    conn.execute(update(T).where(T.c.id == subscriber_id).values(confirm_sent_at=aware_now(now)))


def update_preferences(
    conn: Connection,
    subscriber_id: int,
    *,
    topics: Iterable[str] | str | None = None,
    language: str | None = None,
    name: str | None = None,
    known_topics: Collection[str] | None = None,
    languages: Collection[str] | None = None,
) -> bool:
    """Change topics (empty: all), language (``""``: the digest's) or name; None leaves as is."""
    values: dict[str, Any] = {}
    if topics is not None:
        values["topics"] = ";".join(check_topics(parse_topics(topics), known_topics))
    if language is not None:
        values["language"] = check_language(language, languages)
    if name is not None:
        values["name"] = clean_name(name)
    if not values:
        return get_by_id(conn, subscriber_id) is not None
    return conn.execute(update(T).where(T.c.id == subscriber_id).values(**values)).rowcount > 0


# --------------------------------------------------------------------------- access & erasure


def export_subscriber(conn: Connection, address: str) -> dict[str, Any] | None:
    """Everything stored about one person (for an access request), JSON-ready."""
    rec = get_by_email(conn, address)
    if rec is None:
        return None
    d, i = schema.deliveries, schema.issues
    rows = conn.execute(
        select(i.c.number, d.c.state, d.c.attempts, d.c.sent_at, d.c.last_error, d.c.message_id)
        .join(i, i.c.id == d.c.issue_id)
        .where(d.c.subscriber_id == rec.id)
        .order_by(i.c.number)
    ).all()

    def iso(t: datetime | None) -> str | None:
        t = _utc(t)
        return t.isoformat() if t else None

    return {
        "email": rec.email,
        "name": rec.name,
        "status": rec.status.value,
        "topics": list(rec.topics),
        "language": rec.language,
        "created": iso(rec.created),
        "confirmed_at": iso(rec.confirmed_at),
        "unsubscribed_at": iso(rec.unsubscribed_at),
        "confirm_sent_at": iso(rec.confirm_sent_at),
        "source": rec.source,
        "deliveries": [
            {
                "issue": r.number,
                "state": r.state,
                "attempts": r.attempts,
                "sent_at": iso(r.sent_at),
                "last_error": r.last_error,
                "message_id": r.message_id,
            }
            for r in rows
        ],
    }


def erase_subscriber(
    conn: Connection, secret: bytes, address: str, now: datetime | None = None
) -> bool:
    """Delete a person and their delivery records; keep only a keyed hash of the address."""
    rec = get_by_email(conn, address)
    if rec is None:
        return False
    conn.execute(delete(schema.deliveries).where(schema.deliveries.c.subscriber_id == rec.id))
    conn.execute(delete(T).where(T.c.id == rec.id))
    h = erased_hash(secret, rec.email)
    if not conn.execute(select(schema.erased).where(schema.erased.c.email_hash == h)).first():
        conn.execute(
            insert(schema.erased).values(email_hash=h, key_rule=KEY_RULE, erased_at=aware_now(now))
        )
    return True


def is_erased(
    conn: Connection, secret: bytes, address: str, *, previous: bytes | None = None
) -> bool:
    """Whether ``address`` was erased (under either key rule, with either secret)."""
    cond = erased_condition(secret, address, previous)
    return conn.execute(select(schema.erased.c.email_hash).where(cond)).first() is not None


def forget_erasure(
    conn: Connection, secret: bytes, address: str, *, previous: bytes | None = None
) -> None:
    """Drop the erased marker: the person signed up again of their own accord."""
    conn.execute(delete(schema.erased).where(erased_condition(secret, address, previous)))
