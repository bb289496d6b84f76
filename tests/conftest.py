"""Shared fixtures: the feed corpus, a real local SMTP server, isolated working folders."""

from __future__ import annotations

import email
import email.policy
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from aiosmtpd.controller import Controller

REPO = Path(__file__).resolve().parent.parent
#: The project's shared test data (feed corpus, seed article), kept beside the checkout, not in
#: it: real feeds whose text is the publishers' own. DIGEST_SHARED points elsewhere.
SHARED = Path(os.environ.get("DIGEST_SHARED") or REPO.parent / "shared")
CORPUS = SHARED / "corpus"
SEED = SHARED / "seed" / "sovereign-cloud-article.txt"


def require_shared(path: Path) -> Path:
    """``path`` inside the shared test data; skip the test without it (fail under ``CI=true``)."""
    if path.exists():
        return path
    reason = (
        f"needs the shared test data at {path}: the project's shared/ folder beside the checkout"
        " (../shared), or set DIGEST_SHARED to it"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"shared test data cannot be skipped under CI: {reason}", pytrace=False)
    pytest.skip(reason)


#: ``postgresql://user:pw@host:port/postgres`` (a role that may CREATE DATABASE): run every test's
#: database on that server instead of SQLite (``make test-pg`` and ``.ci/run`` set it).
TEST_DATABASE_ENV = "DIGEST_TEST_DATABASE_URL"


def on_postgresql() -> bool:
    return bool(os.environ.get(TEST_DATABASE_ENV))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if on_postgresql() and item.get_closest_marker("sqlite_only"):
        pytest.skip("about SQLite itself (this run is on PostgreSQL)")
    if not on_postgresql() and item.get_closest_marker("postgresql"):
        pytest.skip(f"needs PostgreSQL: set {TEST_DATABASE_ENV} (make test-pg)")


@pytest.fixture(scope="session")
def _pg_admin() -> Iterator[Any]:
    """An AUTOCOMMIT engine on the test server's maintenance database (CREATE/DROP DATABASE)."""
    from sqlalchemy import create_engine

    from digest.store.db import database_url

    engine = create_engine(
        database_url(os.environ[TEST_DATABASE_ENV]), isolation_level="AUTOCOMMIT"
    )
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def db_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """This test's own, empty database: SQLite in tmp_path, or a fresh PostgreSQL database
    (created here, dropped afterwards, whoever still holds a connection to it)."""
    if not on_postgresql():
        yield f"sqlite:///{tmp_path}/digest.db"
        return
    from sqlalchemy import text

    from digest.store.db import database_url

    admin = request.getfixturevalue("_pg_admin")
    name = f"digest_test_{uuid.uuid4().hex[:16]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            database_url(os.environ[TEST_DATABASE_ENV])
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(autouse=True)
def _every_database_on_postgresql(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a PostgreSQL run, every database a test opens is this test's own PostgreSQL database.

    Tests name SQLite files (``sqlite:///var/digest.db`` in their config): the storage URL of
    every config loaded (in this process or a child ``digest``) and every SQLite URL opened here
    become this test's ``db_url``. Tests about SQLite itself are marked ``sqlite_only``.
    """
    if not on_postgresql() or request.node.get_closest_marker("sqlite_only"):
        return
    import digest.store.db as db

    url = request.getfixturevalue("db_url")
    monkeypatch.setenv("DIGEST_STORAGE_URL", url)
    parse = db.database_url

    def redirected(given: str) -> Any:
        return parse(url if given.startswith("sqlite") else given)

    monkeypatch.setattr(db, "database_url", redirected)


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """``../shared/corpus``: real and hostile feed files (see its README)."""
    return require_shared(CORPUS)


@pytest.fixture(scope="session")
def seed_path() -> Path:
    """``../shared/seed/sovereign-cloud-article.txt``: one real English article, as plain text."""
    return require_shared(SEED)


@pytest.fixture(scope="session")
def seed(seed_path: Path) -> str:
    """The seed article's text."""
    return seed_path.read_text(encoding="utf-8")


# The loggers digest.infra.logs.configure() touches (the level of the library ones).
_CONFIGURED_LOGGERS = (
    "digest",
    "httpx",
    "httpcore",
    "apscheduler",
    "trafilatura",
    "mail.log",
)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo digest.infra.logs.configure() after each test.

    Every in-process CLI run (run_cli, CliRunner) configures logging: the 'digest' logger gets
    its own stderr handler, stops propagating (so caplog at the root no longer sees it) and the
    library loggers are raised to WARNING. Left in place, that makes later tests depend on
    which tests ran before them.
    """
    saved: dict[str, tuple[list[logging.Handler], int, bool]] = {}
    for name in _CONFIGURED_LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (logger.handlers[:], logger.level, logger.propagate)
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class SinkHandler:
    """An aiosmtpd handler that keeps every message it accepts."""

    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
            )
        return "250 OK queued"


@dataclass
class SMTPSink:
    host: str
    port: int
    handler: SinkHandler

    @property
    def received(self) -> list[Received]:
        return self.handler.received


@pytest.fixture
def smtp_sink() -> Iterator[SMTPSink]:
    """A real SMTP server on loopback (aiosmtpd) that accepts and keeps every message."""
    handler = SinkHandler()
    port = free_port()
    # aiosmtpd gives a starting server 5 s by default to bind and answer a first connection: not
    # always enough on a loaded machine. Only a failure waits this long.
    controller = Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=60)
    controller.start()
    try:
        yield SMTPSink("127.0.0.1", port, handler)
    finally:
        controller.stop()


class CLIResult(NamedTuple):
    """What one in-process ``digest`` command left: exit code, stdout, stderr."""

    code: int
    out: str
    err: str


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> CLIResult:
    """Run ``digest ARGS`` through the real entry point (exit-code policy included)."""
    from digest.cli import main

    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    code = info.value.code
    return CLIResult(code if isinstance(code, int) else 1, captured.out, captured.err)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test from an empty folder, so relative paths (var/, outbox/) land there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    return tmp_path


@pytest.fixture
def silent_site() -> Iterator[str]:
    """A site that accepts connections and never answers (a hung web server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
