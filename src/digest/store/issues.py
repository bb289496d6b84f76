"""Issues: numbering, storing a built issue (content as JSON, rendered page and text), reading back.

The ``IssueContent`` is kept as JSON so an issue can be rendered again per language or topic set
(delivery, web archive) exactly as it was built, whatever the items have become since.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, select, update

from digest.errors import UsageError
from digest.models import IssueContent
from digest.store import schema
from digest.store.items import as_utc, to_db

__all__ = [
    "StoredIssue",
    "issue_from_json",
    "issue_to_json",
    "last_period_end",
    "list_issues",
    "load_issue",
    "next_issue_number",
    "save_issue",
    "set_issue_status",
]


# --------------------------------------------------------------------------- JSON


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value


def _decode(tp: Any, value: Any) -> Any:
    """Rebuild a value of type ``tp`` from JSON, following the dataclasses' own type hints."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return _decode(options[0], value)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in value)
        return tuple(_decode(a, v) for a, v in zip(args, value, strict=True))
    if tp is datetime:
        return as_utc(datetime.fromisoformat(value))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        known = {f.name for f in dataclasses.fields(tp)}
        # Keys from a newer or older shape are tolerated: unknown ones dropped, defaults fill in.
        kwargs = {k: _decode(hints[k], v) for k, v in value.items() if k in known}
        return tp(**kwargs)
    if tp is float and isinstance(value, int):
        return float(value)
    return value


def issue_to_json(content: IssueContent) -> str:
    return json.dumps(_encode(content), ensure_ascii=False, separators=(",", ":"))


def issue_from_json(text: str) -> IssueContent:
    content = _decode(IssueContent, json.loads(text))
    assert isinstance(content, IssueContent)
    return content


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True)
class StoredIssue:
    """An issue as stored: its content, the page HTML and text, and where delivery stands."""

    id: int
    number: int
    created: datetime
    period_start: datetime
    period_end: datetime
    title: str
    language: str
    subject: str
    html: str
    text: str
    status: str
    content: IssueContent


def _stored(row: Row[Any]) -> StoredIssue:
    m = row._mapping
    return StoredIssue(
        id=m["id"],
        number=m["number"],
        created=as_utc(m["created"]),
        period_start=as_utc(m["period_start"]),
        period_end=as_utc(m["period_end"]),
        title=m["title"],
        language=m["language"],
        subject=m["subject"],
        html=m["html"],
        text=m["text"],
        status=m["status"],
        content=issue_from_json(m["content_json"]),
    )


def next_issue_number(conn: Connection) -> int:
    top = conn.execute(select(func.max(schema.issues.c.number))).scalar()
    return int(top or 0) + 1


def save_issue(
    conn: Connection,
    content: IssueContent,
    *,
    subject: str,
    html: str,
    text: str,
    status: str = "sending",
) -> int:
    """Store a built issue and its items; returns the issue's row id."""
    issue_id = conn.execute(
        schema.issues.insert()
        .values(
            number=content.number,
            created=to_db(content.created),
            period_start=to_db(content.period_start),
            period_end=to_db(content.period_end),
            title=content.title,
            language=content.language,
            content_json=issue_to_json(content),
            subject=subject,
            html=html,
            text=text,
            status=status,
        )
        .returning(schema.issues.c.id)
    ).scalar_one()
    rows: list[dict[str, Any]] = []
    seen: set[int] = set()
    for section in content.sections:
        for entry in section.entries:
            if entry.item_id in seen:
                continue
            seen.add(entry.item_id)
            rows.append(
                {
                    "issue_id": issue_id,
                    "item_id": entry.item_id,
                    "topic_id": section.topic_id,
                    "position": len(rows),
                }
            )
    if rows:
        conn.execute(schema.issue_items.insert(), rows)
    return int(issue_id)


def load_issue(conn: Connection, number: int) -> StoredIssue:
    """The stored issue ``number``; UsageError naming it when there is none."""
    if not 0 < number <= schema.MAX_INTEGER:
        raise UsageError(f"issue #{number} does not exist")
    row = conn.execute(select(schema.issues).where(schema.issues.c.number == number)).first()
    if row is None:
        raise UsageError(f"issue #{number} does not exist")
    return _stored(row)


def list_issues(conn: Connection, *, limit: int | None = None) -> list[StoredIssue]:
    """Issues, newest first."""
    stmt = select(schema.issues).order_by(schema.issues.c.number.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    return [_stored(r) for r in conn.execute(stmt)]


def last_period_end(conn: Connection) -> datetime | None:
    """Where the previous issue's period ended: the next one takes items first seen after it."""
    value = conn.execute(select(func.max(schema.issues.c.period_end))).scalar()
    return None if value is None else as_utc(value)


def set_issue_status(conn: Connection, number: int, status: str) -> None:
    conn.execute(
        update(schema.issues).where(schema.issues.c.number == number).values(status=status)
    )
