"""CSV import of subscribers: streamed in batches, each bad row named by ``file:line``.

Present addresses are left untouched; erased ones (keyed hash in ``erased``) are skipped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select

from digest.errors import UsageError
from digest.models import SubscriberStatus
from digest.store import schema
from digest.store.subscribers import (
    KEY_RULE,
    LEGACY_KEY_RULE,
    T,
    aware_now,
    check_language,
    check_topics,
    email_key,
    legacy_email_key,
    new_row,
    normalize_email,
    parse_topics,
)
from digest.tokens import keyed_hash

#: Rows per INSERT / duplicate look-up during imports: bounded memory for any file size.
IMPORT_BATCH = 1000


@dataclass
class ImportReport:
    """What ``import_csv`` did; warnings are one line each, naming file and line."""

    added: int = 0
    already_present: int = 0
    duplicates_in_file: int = 0
    erased_skipped: int = 0
    warnings: list[str] = field(default_factory=list)


def import_csv(
    conn: Connection,
    source: Path | str | io.TextIOBase,
    *,
    secret: bytes,
    previous: bytes | None = None,
    now: datetime | None = None,
    known_topics: Collection[str] | None = None,
    languages: Collection[str] | None = None,
) -> ImportReport:
    """Import a CSV (``email`` required; ``name``, ``topics`` ";"-separated, ``language``).

    Streams the file in batches. A bad row is a UsageError naming ``file:line`` (the caller's
    transaction then imports nothing). Present addresses are left untouched (an unsubscribed
    person is never re-subscribed by an import); erased addresses are skipped with a warning
    (recognised with ``previous`` too, the secret before a rotation).
    """
    now = aware_now(now)
    label = str(source) if isinstance(source, Path | str) else getattr(source, "name", "<csv>")
    report = ImportReport()
    if isinstance(source, Path | str):
        try:
            with open(source, encoding="utf-8-sig", newline="") as fh:
                secrets = (secret, previous)
                _import_rows(conn, fh, label, secrets, now, known_topics, languages, report)
        except FileNotFoundError:
            raise UsageError(f"{label}: file not found") from None
        except UnicodeDecodeError:
            raise UsageError(f"{label}: not UTF-8 text") from None
        except OSError as exc:
            raise UsageError(f"{label}: cannot read: {exc.strerror}") from None
    else:
        _import_rows(conn, source, label, (secret, previous), now, known_topics, languages, report)
    return report


def _import_rows(
    conn: Connection,
    fh: Any,
    label: str,
    secrets: tuple[bytes, bytes | None],
    now: datetime,
    known_topics: Collection[str] | None,
    languages: Collection[str] | None,
    report: ImportReport,
) -> None:
    reader = csv.DictReader(fh)
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise UsageError(f"{label}:1: bad CSV: {exc}") from None
    if not header:
        raise UsageError(f"{label}: empty file (expected a header row with an 'email' column)")
    columns = {h.strip().lower() for h in header if h}
    if "email" not in columns:
        raise UsageError(f"{label}:1: no 'email' column in the header ({', '.join(header)})")
    unknown = columns - {"email", "name", "topics", "language"}
    if unknown:
        report.warnings.append(
            f"{label}:1: ignoring unknown column(s): {', '.join(sorted(unknown))}"
        )
    batch: list[tuple[int, dict[str, Any]]] = []
    try:
        for row in reader:
            line = reader.line_num
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if k}
            if not any(row.values()):
                continue
            address = row.get("email", "")
            if not address:
                raise UsageError(f"{label}:{line}: empty email")
            try:
                normalized = normalize_email(address)
                values = new_row(
                    normalized,
                    name=row.get("name"),
                    topics=check_topics(parse_topics(row.get("topics")), known_topics),
                    language=check_language(row.get("language"), languages),
                    status=SubscriberStatus.ACTIVE,
                    source="import",
                    now=now,
                )
            except UsageError as exc:
                raise UsageError(f"{label}:{line}: {exc}") from None
            batch.append((line, values))
            if len(batch) >= IMPORT_BATCH:
                _flush(conn, batch, label, secrets, now, report)
                batch = []
    except csv.Error as exc:
        raise UsageError(f"{label}:{reader.line_num}: bad CSV: {exc}") from None
    _flush(conn, batch, label, secrets, now, report)


def _erased_in(
    conn: Connection,
    addresses: list[str],
    secrets: tuple[bytes, bytes | None],
    now: datetime,
) -> set[str]:
    """The address keys (``email_key``) of those of ``addresses`` that were erased, in one query.

    A marker is the keyed hash of the address key under today's rule or, for markers made
    before it, under the casefold rule; with the current secret or the previous one. A marker
    found under the previous secret (today's rule) is written again under the current one, so
    the erasure outlives the previous secret's retirement.
    """
    secret, previous = secrets
    usable = [secret] if previous is None or previous == secret else [secret, previous]
    # (hash, rule) -> the keys it stands for (a casefold hash may stand for several).
    wanted: dict[tuple[str, str], set[str]] = {}
    rekey: dict[str, str] = {}  # previous-secret hash -> the current-secret hash of its key
    for address in addresses:
        key = email_key(address)
        for s in usable:
            h = keyed_hash(s, key, purpose="erased")
            wanted.setdefault((h, KEY_RULE), set()).add(key)
            if s is not secret:
                rekey[h] = keyed_hash(secret, key, purpose="erased")
            legacy = keyed_hash(s, legacy_email_key(address), purpose="erased")
            wanted.setdefault((legacy, LEGACY_KEY_RULE), set()).add(key)
    e = schema.erased.c
    found = conn.execute(
        select(e.email_hash, e.key_rule).where(e.email_hash.in_({h for h, _ in wanted}))
    ).all()
    gone: set[str] = set()
    renewed: set[str] = set()
    for h, rule in found:
        gone |= wanted.get((h, rule), set())
        if rule == KEY_RULE and h in rekey:
            renewed.add(rekey[h])
    if renewed:
        present = set(conn.execute(select(e.email_hash).where(e.email_hash.in_(renewed))).scalars())
        rows = [
            {"email_hash": h, "key_rule": KEY_RULE, "erased_at": now} for h in renewed - present
        ]
        if rows:
            conn.execute(insert(schema.erased), rows)
    return gone


def _flush(
    conn: Connection,
    batch: list[tuple[int, dict[str, Any]]],
    label: str,
    secrets: tuple[bytes, bytes | None],
    now: datetime,
    report: ImportReport,
) -> None:
    if not batch:
        return
    keys = {v["email_key"] for _, v in batch}
    present = set(conn.execute(select(T.c.email_key).where(T.c.email_key.in_(keys))).scalars())
    gone = _erased_in(conn, [v["email"] for _, v in batch], secrets, now)
    rows: dict[str, dict[str, Any]] = {}
    for line, values in batch:
        key = values["email_key"]
        if key in gone:
            report.erased_skipped += 1
            report.warnings.append(
                f"{label}:{line}: {values['email']} asked to be erased earlier; not re-imported"
            )
        elif key in present:
            report.already_present += 1
        elif key in rows:
            report.duplicates_in_file += 1
            report.warnings.append(
                f"{label}:{line}: {values['email']} appears twice; kept the first"
            )
        else:
            rows[key] = values
    if rows:
        conn.execute(insert(T), list(rows.values()))
        report.added += len(rows)
        # Later batches find these through ``present``: no file-wide set in memory.
