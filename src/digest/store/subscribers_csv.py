"""CSV import of subscribers, row by row: good rows are added, each bad one refused on its own
line ``file:line: reason``; streamed in batches. Present addresses are left untouched; erased
ones (keyed hash in ``erased``) are skipped.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import SQLAlchemyError

from digest.errors import UsageError
from digest.models import SubscriberStatus
from digest.store import schema
from digest.store.db import begin_writes
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
#: The columns an import reads; any other is ignored with a warning.
COLUMNS = ("email", "name", "topics", "language")
#: Longer than any address email-validator accepts (254): refused before validating, and
#: the reason quotes only the start of it.
_MAX_ADDRESS = 320
_SHOWN = 80
_FIRST = " (only the first one is used)"
# Lone surrogates: what ``surrogateescape`` leaves for each byte that was not UTF-8.
_UNDECODED = re.compile("[\udc80-\udcff]")


@dataclass
class ImportReport:
    """What ``import_csv`` did. ``lines`` holds, in file order, one line per refused row, per
    erased address skipped and per ignored column (``file:line: reason``), unless the caller
    took them as they came."""

    added: int = 0
    already_present: int = 0
    erased_skipped: int = 0
    refused: int = 0
    lines: list[str] = field(default_factory=list)


@dataclass
class _Batch:
    """Rows read since the last flush: the good ones and the problems, each with its line."""

    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)


def import_csv(
    conn: Connection,
    source: Path | str | TextIO,
    *,
    secret: bytes,
    previous: bytes | None = None,
    now: datetime | None = None,
    known_topics: Collection[str] | None = None,
    languages: Collection[str] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> ImportReport:
    """Import a CSV (``email`` required; ``name``, ``topics`` ";"-separated, ``language``).

    Each row is a unit: a row that cannot be imported (invalid address, bytes that are not
    UTF-8 on its lines, unknown topic or language, a name holding lost bytes, a repeat of an
    earlier row, a row the database refuses) is refused and named ``file:line: reason`` — the
    others are imported. Only a file that is not a subscriber CSV at all (missing, unreadable,
    no header, no ``email`` column) is a UsageError, before anything is written.

    Present addresses are left untouched (an unsubscribed person is never re-subscribed by an
    import); erased addresses are skipped, each named too (recognised with ``previous`` as
    well, the secret before a rotation). ``on_line`` receives those lines in file order, batch
    by batch (bounded memory for any file); without it they are kept in ``report.lines``.
    """
    now = aware_now(now)
    begin_writes(conn)  # so that a rollback of the caller's transaction undoes every batch
    label = str(source) if isinstance(source, Path | str) else getattr(source, "name", "<csv>")
    report = ImportReport()
    emit = on_line if on_line is not None else report.lines.append
    run = _Run(conn, label, (secret, previous), now, known_topics, languages, report, emit)
    if isinstance(source, Path | str):
        try:
            # Bytes that are not UTF-8 become lone surrogates, so one such byte refuses only
            # the row it is on (decoding strictly refused the whole file).
            with open(source, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
                run.rows(fh)
        except FileNotFoundError:
            raise UsageError(f"{label}: file not found") from None
        except OSError as exc:
            raise UsageError(f"{label}: cannot read: {exc.strerror}") from None
    else:
        run.rows(source)
    return report


def _shown(value: str) -> str:
    """``value`` quoted for a one-line message: escapes for controls, undecodable bytes shown
    as the bytes they were, long values cut."""
    if _UNDECODED.search(value):
        raw = value.encode("utf-8", "surrogateescape")
        return repr(raw[:_SHOWN]) + ("…" if len(raw) > _SHOWN else "")
    return repr(value[:_SHOWN]) + ("…" if len(value) > _SHOWN else "")


class _Run:
    """One import: reads records, judges each row, flushes batches to the store."""

    def __init__(
        self,
        conn: Connection,
        label: str,
        secrets: tuple[bytes, bytes | None],
        now: datetime,
        known_topics: Collection[str] | None,
        languages: Collection[str] | None,
        report: ImportReport,
        emit: Callable[[str], None],
    ) -> None:
        self.conn = conn
        self.label = label
        self.secrets = secrets
        self.now = now
        self.known_topics = known_topics
        self.languages = languages
        self.report = report
        self.emit = emit
        self.lines_read = 0

    def _counted(self, fh: TextIO | io.TextIOBase) -> Iterator[str]:
        for text in fh:
            self.lines_read += 1
            yield text

    def rows(self, fh: TextIO | io.TextIOBase) -> None:
        reader = csv.reader(self._counted(fh))
        columns = self._header(reader)
        batch = _Batch()
        while True:
            start = self.lines_read + 1  # a quoted field may span lines: name the first
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                batch.refused.append((start, f"bad CSV: {exc}"))
            else:
                self._judge(record, columns, start, batch)
            if len(batch.rows) + len(batch.refused) >= IMPORT_BATCH:
                self._flush(batch)
                batch = _Batch()
        self._flush(batch)

    def _header(self, reader: Any) -> dict[str, int]:
        """Column name -> position; UsageError when this is not a subscriber CSV."""
        try:
            header: list[str] = next(reader)
        except StopIteration:
            header = []
        except csv.Error as exc:
            raise UsageError(f"{self.label}:1: not a CSV file: {exc}") from None
        names = [h.strip().lower() for h in header]
        if not any(names):
            raise UsageError(
                f"{self.label}: empty file (expected a header row with an 'email' column)"
            )
        if "email" not in names:
            shown = ", ".join(_shown(h) for h in header[:10])
            more = f" and {len(header) - 10} more" if len(header) > 10 else ""
            raise UsageError(
                f"{self.label}:1: no 'email' column in the header ({shown}{more}); "
                "is this a CSV file of subscribers?"
            )
        unknown = sorted({n for n in names if n and n not in COLUMNS})
        if unknown:
            self.emit(
                f"{self.label}:1: ignoring unknown column(s): "
                + ", ".join(_shown(u) for u in unknown[:10])
            )
        positions: dict[str, int] = {}
        for i, name in enumerate(names):
            if name in COLUMNS:
                positions.setdefault(name, i)  # a repeated column: the first one counts
        return positions

    def _judge(self, record: list[str], columns: dict[str, int], line: int, batch: _Batch) -> None:
        row = {col: record[i].strip() if i < len(record) else "" for col, i in columns.items()}
        if not any(row.values()):
            return  # a blank line, or only commas
        for column in COLUMNS:
            if _UNDECODED.search(row.get(column, "")):
                shown = _shown(row[column])
                batch.refused.append((line, f"{column} {shown} holds bytes that are not UTF-8"))
                return
        address = row.get("email", "")
        if not address:
            batch.refused.append((line, "empty email"))
            return
        if len(address) > _MAX_ADDRESS:
            batch.refused.append(
                (line, f"{_shown(address)} is not a valid email address: too long")
            )
            return
        name = row.get("name") or None
        if name is not None and "\ufffd" in name:
            # U+FFFD is what an earlier conversion left for bytes it could not read: the name
            # as written is lost, and guessing it would misname the person in every issue.
            batch.refused.append(
                (line, f"name {_shown(name)} holds U+FFFD (bytes lost before this file)")
            )
            return
        try:
            values = new_row(
                normalize_email(address),
                name=name,
                topics=check_topics(parse_topics(row.get("topics")), self.known_topics),
                language=check_language(row.get("language"), self.languages),
                status=SubscriberStatus.ACTIVE,
                source="import",
                now=self.now,
            )
        except UsageError as exc:
            batch.refused.append((line, str(exc)))
            return
        batch.rows.append((line, values))

    def _flush(self, batch: _Batch) -> None:
        report = self.report
        notes: list[tuple[int, str]] = list(batch.refused)
        report.refused += len(batch.refused)
        rows: dict[str, tuple[int, dict[str, Any]]] = {}
        if batch.rows:
            keys = {v["email_key"] for _, v in batch.rows}
            present = {
                r.email_key: r
                for r in self.conn.execute(
                    select(T.c.email_key, T.c.source, T.c.created).where(T.c.email_key.in_(keys))
                )
            }
            gone = _erased_in(
                self.conn, [v["email"] for _, v in batch.rows], self.secrets, self.now
            )
            seen: dict[str, int] = {}  # key -> its first line in this batch
            for line, values in batch.rows:
                key, email = values["email_key"], values["email"]
                if key in gone:
                    report.erased_skipped += 1
                    notes.append((line, f"{email} asked to be erased earlier; not re-imported"))
                elif key in seen:
                    report.refused += 1
                    notes.append((line, f"{email} is a duplicate of line {seen[key]}{_FIRST}"))
                elif key in present and self._added_now(present[key]):
                    # Added from an earlier batch of this same file. No file-wide key set:
                    # memory stays bounded whatever the file's size (so a repeat of a person
                    # already present before the import, batches apart, counts as present).
                    report.refused += 1
                    notes.append((line, f"{email} is a duplicate of an earlier row{_FIRST}"))
                else:
                    seen[key] = line
                    if key in present:
                        report.already_present += 1
                    else:
                        rows[key] = (line, values)
        for line, reason in self._insert(list(rows.values())):
            report.refused += 1
            notes.append((line, reason))
        for line, reason in sorted(notes, key=lambda n: n[0]):
            self.emit(f"{self.label}:{line}: {reason}")

    def _added_now(self, row: Any) -> bool:
        created = row.created
        if created is not None and created.tzinfo is None:
            created = created.replace(tzinfo=UTC)  # SQLite hands naive UTC back
        return bool(row.source == "import" and created == self.now)

    def _insert(self, rows: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, str]]:
        """Insert the batch in one statement; when the database refuses it, row by row, so
        one row it cannot hold (or a sign-up of the same address meanwhile) fails alone."""
        if not rows:
            return []
        try:
            with self.conn.begin_nested():
                self.conn.execute(insert(T), [v for _, v in rows])
            self.report.added += len(rows)
            return []
        except SQLAlchemyError:
            pass
        failed: list[tuple[int, str]] = []
        for line, values in rows:
            try:
                with self.conn.begin_nested():
                    self.conn.execute(insert(T), [values])
                self.report.added += 1
            except SQLAlchemyError as exc:
                reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
                failed.append((line, f"{values['email']}: the database refused it: {reason}"))
        return failed


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
