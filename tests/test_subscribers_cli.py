"""The people commands: import, list, export, remove, unsubscribe, deliveries (exit codes too)."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert

from delivery_kit import SECRET, store_issue
from digest.cli import main
from digest.models import DeliveryState
from digest.store import open_store, schema
from digest.store import subscribers as subs
from digest.tokens import make_token


@pytest.fixture
def cfg(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    path = workdir / "digest.toml"
    path.write_text(
        '[storage]\nurl = "sqlite:///var/d.db"\n'
        '[topics.data_protection]\ntitle = "Data protection"\ninclude = ["GDPR"]\n',
        encoding="utf-8",
    )
    (workdir / "people.csv").write_text(
        "email,name,topics,language\n"
        "ann@example.org,Ann,data_protection,fr\n"
        "BOB@example.org,Bob,,\n"
        "bob@example.org,Bob again,,\n",
        encoding="utf-8",
    )
    return path


def run(cfg: Path, *args: str) -> int:
    with pytest.raises(SystemExit) as exc:
        main(["--config", str(cfg), *args])
    return int(exc.value.code or 0)


def test_import_then_list(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(cfg, "subscribers", "import", "people.csv") == 1  # the repeated Bob
    captured = capsys.readouterr()
    assert captured.out == "2 added, 0 already present, 0 skipped (erased), 1 refused\n"
    assert row_lines(captured.err) == [
        "people.csv:4: bob@example.org is a duplicate of line 3 (only the first one is used)"
    ]
    assert run(cfg, "subscribers", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "ann@example.org\tactive\tdata_protection\tfr\tAnn",
        "BOB@example.org\tactive\t*\t-\tBob",
    ]


def row_lines(err: str) -> list[str]:
    """The lines on stderr but the log's (the database's creation on first use)."""
    return [line for line in err.splitlines() if not re.match(r"\d\d:\d\d:\d\d ", line)]


def _emails(cfg: Path) -> list[str]:
    store = open_store(f"sqlite:///{cfg.parent / 'var' / 'd.db'}")
    try:
        with store.connect() as conn:
            return [s.email for s in subs.list_subscribers(conn)]
    finally:
        store.close()


def test_a_file_with_one_bad_row_among_good_ones_imports_the_good_ones_and_names_the_bad_line(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("bad.csv").write_text(
        'email,name\nok@example.org,Ok\nnope@,Nope\nalso-ok@example.org,"Also\r\nOk"\n',
        encoding="utf-8",
    )
    assert run(cfg, "subscribers", "import", "bad.csv") == 1
    captured = capsys.readouterr()
    assert row_lines(captured.err) == [
        "bad.csv:3: 'nope@' is not a valid email address: There must be something after the @-sign."
    ]
    assert captured.out == "2 added, 0 already present, 0 skipped (erased), 1 refused\n"
    assert _emails(cfg) == ["ok@example.org", "also-ok@example.org"]
    assert run(cfg, "subscribers", "list") == 0
    assert "also-ok@example.org\tactive\t*\t-\tAlso Ok" in capsys.readouterr().out


def test_a_non_utf8_byte_on_one_line_refuses_that_line_only(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("latin1.csv").write_bytes(
        b"email,name\n"
        b"ann@example.org,Ann\n"
        b"jos\xe9@example.org,Jos\xe9\n"  # Latin-1, not UTF-8
        b"zoe@example.org,Zo\xc3\xab\n"  # UTF-8
        b"bob@example.org,Bob \xff\n"
    )
    assert run(cfg, "subscribers", "import", "latin1.csv") == 1
    captured = capsys.readouterr()
    assert row_lines(captured.err) == [
        "latin1.csv:3: email b'jos\\xe9@example.org' holds bytes that are not UTF-8",
        "latin1.csv:5: name b'Bob \\xff' holds bytes that are not UTF-8",
    ]
    assert captured.out == "2 added, 0 already present, 0 skipped (erased), 2 refused\n"
    assert _emails(cfg) == ["ann@example.org", "zoe@example.org"]


def test_a_row_the_csv_reader_cannot_read_is_refused_alone(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    huge = "x" * 200_000  # over the csv module's field limit
    Path("huge.csv").write_text(
        f"email,name\nann@example.org,Ann\n{huge}@example.org,Big\nbob@example.org,Bob\n",
        encoding="utf-8",
    )
    assert run(cfg, "subscribers", "import", "huge.csv") == 1
    captured = capsys.readouterr()
    assert row_lines(captured.err) == [
        "huge.csv:3: bad CSV: field larger than field limit (131072)"
    ]
    assert _emails(cfg) == ["ann@example.org", "bob@example.org"]


def test_import_exits_0_when_every_row_is_imported_and_reimport_counts_them_present(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("good.csv").write_text("email\nann@example.org\n\nbob@example.org\n", encoding="utf-8")
    assert run(cfg, "subscribers", "import", "good.csv") == 0
    assert run(cfg, "subscribers", "import", "good.csv") == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "2 added, 0 already present, 0 skipped (erased), 0 refused",
        "0 added, 2 already present, 0 skipped (erased), 0 refused",
    ]
    assert row_lines(captured.err) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"mail,name\nann@example.org,Ann\n", "not.csv:1: no 'email' column in the header"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8\nbob@example.org\n", "no 'email' column"),
        (b"", "not.csv: empty file"),
        (b'"' + b"x" * 200_000 + b'"\nbob@example.org\n', "not.csv:1: not a CSV file"),
    ],
    ids=["no-email-column", "binary", "empty", "huge-header"],
)
def test_a_file_that_is_not_a_subscriber_csv_exits_2_and_imports_nothing(
    cfg: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    Path("not.csv").write_bytes(content)
    assert run(cfg, "subscribers", "import", "not.csv") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err_lines = captured.err.splitlines()
    assert len([line for line in err_lines if line.startswith("error:")]) == 1
    assert message in captured.err
    assert "Traceback" not in captured.err
    assert _emails(cfg) == []


def test_dry_run_reports_every_row_and_writes_nothing(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("bad.csv").write_text("email\nok@example.org\nnope@\n", encoding="utf-8")
    assert run(cfg, "subscribers", "import", "--dry-run", "bad.csv") == 1
    captured = capsys.readouterr()
    assert row_lines(captured.err)[0].startswith("bad.csv:3: 'nope@' is not a valid email")
    assert captured.out == (
        "dry run, nothing written: 1 added, 0 already present, 0 skipped (erased), 1 refused\n"
    )
    assert _emails(cfg) == []


def test_a_name_with_lost_bytes_is_refused_and_control_characters_are_cleaned(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("names.csv").write_text(
        'email,name\nann@example.org,"Evil\r\nX: 1"\nbob@example.org,Bj\ufffdrn\n',
        encoding="utf-8",
    )
    assert run(cfg, "subscribers", "import", "names.csv") == 1
    captured = capsys.readouterr()
    assert row_lines(captured.err) == [
        "names.csv:4: name 'Bj\ufffdrn' holds U+FFFD (bytes lost before this file)"
    ]
    assert run(cfg, "subscribers", "list") == 0
    assert capsys.readouterr().out == "ann@example.org\tactive\t*\t-\tEvil X: 1\n"


def test_import_without_secret_exits_2_naming_the_variable(
    cfg: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DIGEST_SECRET")
    assert run(cfg, "subscribers", "import", "people.csv") == 2
    assert "DIGEST_SECRET" in capsys.readouterr().err


def test_export_then_remove_then_reimport_skips_the_erased_person(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(cfg, "subscribers", "import", "people.csv")
    capsys.readouterr()
    assert run(cfg, "subscribers", "export", "ANN@example.org") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["email"] == "ann@example.org"
    assert data["topics"] == ["data_protection"]
    assert run(cfg, "subscribers", "remove", "ann@example.org") == 0
    assert run(cfg, "subscribers", "export", "ann@example.org") == 2
    capsys.readouterr()
    run(cfg, "subscribers", "import", "people.csv")
    captured = capsys.readouterr()
    assert "1 skipped (erased)" in captured.out
    assert "people.csv:2: ann@example.org asked to be erased earlier" in captured.err


def test_unsubscribe_by_token_or_by_address(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(cfg, "subscribers", "import", "people.csv")
    capsys.readouterr()
    store = open_store("sqlite:///var/d.db")
    with store.connect() as conn:
        ann = subs.get_by_email(conn, "ann@example.org")
    assert ann is not None
    token = make_token(SECRET.encode(), "unsubscribe", ann.token_key)
    assert run(cfg, "unsubscribe", token) == 0
    assert run(cfg, "unsubscribe", "bob@example.org") == 0
    assert capsys.readouterr().out.splitlines() == [
        "unsubscribed ann@example.org",
        "unsubscribed BOB@example.org",
    ]
    assert run(cfg, "subscribers", "list", "--status", "active") == 0
    assert capsys.readouterr().out.strip() == ""
    assert run(cfg, "unsubscribe", token[:-2] + "xx") == 2
    assert "signature does not match" in capsys.readouterr().err


def test_deliveries_json_is_exactly_one_object(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(cfg, "subscribers", "import", "people.csv")
    store = open_store("sqlite:///var/d.db")
    store_issue(store)
    with store.begin() as conn:
        for i, (email, state) in enumerate(
            [("ann@example.org", "sent"), ("BOB@example.org", "failed")]
        ):
            who = subs.get_by_email(conn, email)
            assert who is not None
            conn.execute(
                insert(schema.deliveries).values(
                    issue_id=1,
                    subscriber_id=who.id,
                    state=DeliveryState(state).value,
                    attempts=1,
                    message_id=f"<m{i}@x>",
                    last_error="RCPT 550 5.1.1 No such user here" if state == "failed" else None,
                    updated=datetime.now(UTC),
                )
            )
    capsys.readouterr()
    assert run(cfg, "deliveries", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {
        "issue": 1,
        "states": {"sent": 1, "pending": 0, "retry": 0, "failed": 1, "unknown": 0},
    }
    assert run(cfg, "deliveries", "--issue", "1") == 0
    text = capsys.readouterr().out
    assert text.startswith("issue #1: 1 sent")
    assert "failed BOB@example.org: RCPT 550 5.1.1 No such user here" in text
    assert run(cfg, "deliveries", "--issue", "7") == 2


@pytest.mark.parametrize(
    "command",
    [
        ["subscribers", "import"],
        ["subscribers", "list"],
        ["subscribers", "remove"],
        ["subscribers", "export"],
        ["unsubscribe"],
        ["deliveries"],
    ],
)
def test_every_people_command_has_help_with_an_example(
    cfg: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    assert run(cfg, *command, "--help") == 0
    assert "Example: digest " in capsys.readouterr().out


# --------------------------------------------------------------------------- hostile values


HOSTILE = [
    ("=cmd|'/Ccalc'!A0@example.org", "Formula"),
    ("tab@example.org", "Evil\tactive\t*\t-\tForged"),
    ("newline@example.org", "Evil\nforged@example.org\tactive"),
    ("plus@example.org", "+1 555"),
    ("at@example.org", "@SUM(A1)"),
    ("esc@example.org", "Bell\x07 and \x1b[31m and \u2028 and back\\slash"),
]


def _store_hostile(cfg: Path) -> None:
    store = open_store(f"sqlite:///{cfg.parent / 'var' / 'd.db'}")
    try:
        with store.begin() as conn:
            for address, name in HOSTILE:
                # Straight into the table: names stored before import cleaned them.
                values = subs.new_row(
                    address,
                    name=None,
                    topics=(),
                    language=None,
                    status=subs.SubscriberStatus.ACTIVE,
                    source="cli",
                    now=datetime.now(UTC),
                )
                conn.execute(insert(schema.subscribers).values(**{**values, "name": name}))
    finally:
        store.close()


def test_list_escapes_control_characters_and_neutralises_formulas(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(cfg, "subscribers", "list")  # creates the database
    capsys.readouterr()
    _store_hostile(cfg)
    assert run(cfg, "subscribers", "list") == 0
    lines = capsys.readouterr().out.split("\n")
    assert lines[-1] == ""
    rows = [line.split("\t") for line in lines[:-1]]
    assert len(rows) == len(HOSTILE)  # no forged row
    assert all(len(r) == 5 for r in rows)  # no forged column
    by_name = {r[0]: r for r in rows}
    assert "'=cmd|'/Ccalc'!A0@example.org" in by_name
    assert by_name["tab@example.org"][4] == "Evil\\tactive\\t*\\t-\\tForged"
    assert by_name["newline@example.org"][4] == "Evil\\nforged@example.org\\tactive"
    assert by_name["plus@example.org"][4] == "'+1 555"
    assert by_name["at@example.org"][4] == "'@SUM(A1)"
    assert by_name["esc@example.org"][4] == "Bell\\x07 and \\x1b[31m and \\u2028 and back\\\\slash"
    for row in rows:
        for value in row:
            assert value.isprintable()


def test_list_csv_round_trips_through_the_csv_module_with_formulas_neutralised(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(cfg, "subscribers", "list")
    capsys.readouterr()
    _store_hostile(cfg)
    assert run(cfg, "subscribers", "list", "--csv") == 0
    out = capsys.readouterr().out
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows[0] == ["email", "status", "topics", "language", "name"]
    assert len(rows) == 1 + len(HOSTILE)
    emails = {r[0]: r for r in rows[1:]}
    assert "'=cmd|'/Ccalc'!A0@example.org" in emails
    assert emails["newline@example.org"][4] == "Evil\nforged@example.org\tactive"
    assert emails["plus@example.org"][4] == "'+1 555"
    assert all(not value.startswith(("=", "+", "-", "@")) for r in rows for value in r)


# --------------------------------------------------------------------------- property


_EXAMPLE = itertools.count()
_GOOD_NAME = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufffd"),
    max_size=20,
)
_INVALID = ["{t}@", "{t}", "{t} x@example.org", "{t}@example", "{t}@@example.org"]
_BAD_KINDS = [
    "invalid",
    "undecodable-email",
    "undecodable-name",
    "lost-name",
    "topic",
    "language",
    "duplicate",
    "empty-email",
]
# A byte that is not UTF-8 (surrogateescape writes it back raw), or U+FFFD: bytes lost before.
_SPOILT_NAME = {"undecodable-name": "\udcff", "lost-name": "\ufffd"}
_ROW = st.tuples(
    st.booleans(),
    st.sampled_from(_BAD_KINDS),
    st.sampled_from(_INVALID),
    _GOOD_NAME,
    st.sampled_from(["", "data_protection"]),
    st.sampled_from(["", "fr", "EN"]),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(_ROW, min_size=1, max_size=12))
def test_random_good_and_bad_rows_every_good_row_is_imported_and_every_bad_row_named(
    cfg: Path,
    capsys: pytest.CaptureFixture[str],
    rows: list[tuple[bool, str, str, str, str, str]],
) -> None:
    n = next(_EXAMPLE)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["email", "name", "topics", "language"])
    good: dict[str, str | None] = {}  # address -> the name stored
    bad_lines: list[int] = []
    for i, (is_good, kind, invalid, name, topic, language) in enumerate(rows):
        line = len(io.StringIO(text.getvalue(), newline="").readlines()) + 1
        email = f"p{n}r{i}@Example.org"
        fields = [email, name, topic, language]
        if is_good:
            good[email] = subs.clean_name(name)
        else:
            bad_lines.append(line)
            if kind == "duplicate" and good:
                fields[0] = next(iter(good)).upper()
            elif kind in ("invalid", "duplicate"):
                fields[0] = invalid.format(t=f"p{n}r{i}")
            elif kind == "undecodable-email":
                fields[0] = f"p{n}r{i}\udce9@example.org"  # a Latin-1 é
            elif kind in _SPOILT_NAME:
                fields[1] = name + _SPOILT_NAME[kind]
            elif kind == "topic":
                fields[2] = "cooking"
            elif kind == "language":
                fields[3] = "klingon!"
            else:
                fields[0], fields[1] = "", name + "x"
        writer.writerow(fields)
    path = Path(f"random-{n}.csv")
    path.write_bytes(text.getvalue().encode("utf-8", "surrogateescape"))

    code = run(cfg, "subscribers", "import", str(path))

    captured = capsys.readouterr()
    named = [line.split(": ", 1)[0] for line in row_lines(captured.err)]
    assert named == [f"{path}:{line}" for line in bad_lines]
    assert captured.out == (
        f"{len(good)} added, 0 already present, 0 skipped (erased), {len(bad_lines)} refused\n"
    )
    assert code == (1 if bad_lines else 0)
    store = open_store(f"sqlite:///{cfg.parent / 'var' / 'd.db'}")
    try:
        with store.connect() as conn:
            for email, stored_name in good.items():
                person = subs.get_by_email(conn, email)
                assert person is not None, email
                assert person.name == stored_name
            mine = [s for s in subs.list_subscribers(conn) if s.email.startswith(f"p{n}r")]
    finally:
        store.close()
    assert len(mine) == len(good)
