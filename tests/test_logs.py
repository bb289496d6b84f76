"""Log setup: lines reach the current stderr, in text or JSON."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from digest.infra.logs import configure


def test_a_record_goes_to_the_stderr_of_the_moment_even_after_the_old_one_was_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What an in-process CLI run leaves behind: configure() ran while a capture owned stderr,
    # then the capture was closed and replaced (CliRunner, capsys).
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure()
    logging.getLogger("digest.store").info("opened")
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)

    logging.getLogger("digest.store").info("created database schema")

    written = second.getvalue()
    assert "Logging error" not in written
    assert "I/O operation on closed file" not in written
    assert "info    created database schema" in written


def test_json_lines_carry_the_extra_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    configure(fmt="json")
    logging.getLogger("digest.reader.fetch").warning(
        "feed failed", extra={"feed": "https://a.example/"}
    )
    [line] = stderr.getvalue().splitlines()
    record = json.loads(line)
    assert (record["level"], record["logger"], record["message"], record["feed"]) == (
        "warning",
        "digest.reader.fetch",
        "feed failed",
        "https://a.example/",
    )
