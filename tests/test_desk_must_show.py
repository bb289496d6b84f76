"""Issue 11's "Must show", run as a user would: `digest` commands in a subprocess on a copy of the
demo with ``[review] mode = "required"``, SMTP to a local aiosmtpd sink, two subscribers.

send sends nothing -> draft show --json lists the entries -> drop one, pin one, add an item the
filter dropped (found with items list --dropped --json), write a note -> draft test delivers one
[TEST] message to the editor only -> approve -> send delivers the edited issue to both
subscribers and nobody else -> a rerun sends nothing twice.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import SMTPSink

REPO = Path(__file__).resolve().parent.parent
DIGEST = Path(sys.executable).parent / "digest"
EDITOR = "editor@example.org"
SUBSCRIBERS = {"alice@example.org", "bob@example.org"}

pytestmark = pytest.mark.slow


@pytest.fixture
def demo(tmp_path: Path, smtp_sink: SMTPSink) -> Path:
    (tmp_path / "config").mkdir()
    shutil.copy(REPO / "config" / "topics.toml", tmp_path / "config" / "topics.toml")
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    text = (REPO / "config" / "demo.toml").read_text(encoding="utf-8")
    text = text.replace('mode = "outbox"', 'mode = "smtp"')
    text += f"""
[smtp]
host = "{smtp_sink.host}"
port = {smtp_sink.port}
security = "none"
timeout = 10
max_attempts = 1

[review]
mode = "required"
editors = ["{EDITOR}"]
"""
    (tmp_path / "config" / "demo.toml").write_text(text, encoding="utf-8")
    return tmp_path


def digest(cwd: Path, *args: str, code: int = 0) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env["DIGEST_SECRET"] = "must-show-secret-" + "x" * 24
    done = subprocess.run(
        [str(DIGEST), "--config", "config/demo.toml", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == code, f"digest {' '.join(args)}: {done.returncode}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done.stdout


def recipients(sink: SMTPSink) -> list[str]:
    return [rcpt for r in sink.received for rcpt in r.rcpt_tos]


def body_text(msg: Any) -> str:
    return str(msg.get_body(preferencelist=("plain",)).get_content())


def body_html(msg: Any) -> str:
    return str(msg.get_body(preferencelist=("html",)).get_content())


def test_an_editor_curates_tests_and_approves_the_issue_before_it_reaches_subscribers(
    demo: Path, smtp_sink: SMTPSink
) -> None:
    digest(demo, "subscribers", "import", "examples/subscribers.csv")
    digest(demo, "fetch")

    # 1. Review is required: send builds the draft and sends nothing.
    out = digest(demo, "send")
    assert "issue #1 is waiting for approval" in out
    assert smtp_sink.received == []
    review = json.loads(digest(demo, "status", "--json"))["review"]
    assert review["mode"] == "required"
    assert review["draft"]["number"] == 1
    assert review["draft"]["waiting"] is True

    # 2. The draft lists its entries.
    draft = json.loads(digest(demo, "draft", "show", "--json"))
    assert draft["number"] == 1
    assert draft["approved"] is False
    entries = draft["entries"]
    assert len(entries) >= 3
    assert {"id", "title", "topic", "pinned"} <= set(entries[0])
    dropped, pinned = entries[0], entries[-1]

    # 3. Drop one, pin one, add one the filter dropped, write a note.
    filtered_out = json.loads(digest(demo, "items", "list", "--dropped", "--json"))
    assert filtered_out
    assert all(not any(t["kept"] for t in i["topics"].values()) for i in filtered_out)
    added = filtered_out[0]
    digest(demo, "draft", "drop", str(dropped["id"]))
    digest(demo, "draft", "pin", str(pinned["id"]))
    digest(demo, "draft", "add", str(added["id"]), "--topic", "sovereign_cloud")
    (demo / "note.md").write_text(
        "Hello from the editor: **three** stories matter this week.\n", encoding="utf-8"
    )
    digest(demo, "draft", "note", "--file", "note.md")
    edited = json.loads(digest(demo, "draft", "show", "--json"))
    ids = [e["id"] for e in edited["entries"]]
    assert dropped["id"] not in ids
    assert added["id"] in ids
    assert edited["entries"][0]["id"] == pinned["id"]
    assert edited["entries"][0]["pinned"]
    assert "three" in edited["note"]

    # 4. A test to the editor: exactly one message, to that address only, marked [TEST].
    digest(demo, "draft", "test", EDITOR)
    assert recipients(smtp_sink) == [EDITOR]
    test_msg = smtp_sink.received[0].message()
    assert "[TEST]" in test_msg["Subject"]
    assert "three" in body_text(test_msg)
    # Still not approved: send still sends nothing.
    assert "waiting for approval" in digest(demo, "send")
    assert len(smtp_sink.received) == 1

    # 5. Approve, then send: both subscribers get the edited issue, nobody else.
    digest(demo, "draft", "approve", "--as", EDITOR)
    out = digest(demo, "send")
    assert "issue #1" in out
    assert "2 sent" in out
    issue = smtp_sink.received[1:]
    assert sorted(recipients(smtp_sink)[1:]) == sorted(SUBSCRIBERS)
    for received in issue:
        msg = received.message()
        assert "[TEST]" not in msg["Subject"]
        text, html = body_text(msg), body_html(msg)
        assert "three" in text
        assert "<strong>three</strong>" in html
        assert dropped["title"] not in text
        assert " ".join(added["title"].split()[:4]) in " ".join(text.split())
        # The pinned story comes first, before every other entry.
        first = min(text.find(e["title"][:30]) for e in edited["entries"][1:])
        assert 0 <= text.find(pinned["title"][:30]) < first
        assert text.find("three") < text.find(pinned["title"][:30])

    # 6. Rerun: nothing is sent twice, and no new draft without new items.
    out = digest(demo, "send")
    assert "nothing sent" in out
    assert len(smtp_sink.received) == 3
    digest(demo, "draft", "show", code=2)
