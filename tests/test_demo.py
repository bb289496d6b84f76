"""`make demo` in-process: the example feeds become issue #1 in the outbox, sent once to each
of the two example subscribers, whatever number of times the demo runs."""

from __future__ import annotations

import email
import email.policy
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from digest.cli import main
from digest.store import open_store, schema
from digest.store.issues import load_issue

REPO = Path(__file__).resolve().parent.parent
SEED_TITLE = "A page is turning for the French sovereign cloud"
BOILERPLATE = ("FaLang", "Read the article", "Source : Les Echos")
OFF_TOPIC = (
    "Cloud gaming",
    "Champions League",
    "Météo",
    "Souveraineté alimentaire",
    "Quarterly earnings",
    "smartphone pliant",
)


def digest(*args: str) -> tuple[int, str]:
    try:
        main(["--config", "config/demo.toml", *args])
    except SystemExit as exc:
        return int(exc.code or 0), ""
    return 0, ""  # pragma: no cover - main always exits


@pytest.fixture
def demo(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the demo (config, feeds, subscribers) in an empty folder."""
    monkeypatch.setenv("DIGEST_SECRET", "demo-test-secret-" + "x" * 20)
    (workdir / "config").mkdir()
    for name in ("demo.toml", "topics.toml"):
        shutil.copy(REPO / "config" / name, workdir / "config" / name)
    shutil.copytree(REPO / "examples", workdir / "examples")
    return workdir


def make_demo() -> int:
    """What the Makefile's demo target runs."""
    code, _ = digest("subscribers", "import", "examples/subscribers.csv")
    if code:
        return code
    code, _ = digest("run", "--once")
    return code


def sent_deliveries() -> int:
    store = open_store("sqlite:///var/demo.db")
    with store.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(schema.deliveries)
                .where(schema.deliveries.c.state == "sent")
            ).scalar_one()
        )


def test_the_demo_writes_issue_1_with_the_seed_article_and_one_eml_per_subscriber(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert make_demo() == 0
    assert "outbox/1/index.html" in capsys.readouterr().out
    page = (demo / "outbox" / "1" / "index.html").read_text(encoding="utf-8")
    emls = sorted((demo / "outbox" / "1").glob("*.eml"))
    assert len(emls) == 2

    with open_store("sqlite:///var/demo.db").connect() as conn:
        issue = load_issue(conn, 1)
    sections = {s.topic_id: s for s in issue.content.sections}
    [seed] = [e for e in sections["sovereign_cloud"].entries if e.title == SEED_TITLE]
    assert "Cloudwatt" in seed.summary
    for junk in BOILERPLATE:
        assert junk not in seed.summary
    assert SEED_TITLE in page

    recipients = set()
    for path in emls:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        recipients.add(str(msg["To"]))
        body = msg.get_body(("plain",))
        assert body is not None
        assert SEED_TITLE in body.get_content()
    assert any("alice@example.org" in r for r in recipients)
    assert any("bob@example.org" in r for r in recipients)

    everything = page + "".join(p.read_text(encoding="utf-8", errors="replace") for p in emls)
    for junk in ("FaLang", *OFF_TOPIC):
        assert junk not in everything, junk
    # Links shown to readers carry no tracking parameters (the seed item's link has utm_*).
    assert "utm_" not in page


def test_a_second_demo_sends_nobody_a_second_copy(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert make_demo() == 0
    first = sorted(p.name for p in (demo / "outbox").rglob("*.eml"))
    assert sent_deliveries() == 2
    capsys.readouterr()
    assert make_demo() == 0
    out = capsys.readouterr().out
    assert "no new items: nothing sent" in out
    assert "outbox/1/index.html" in out
    assert sorted(p.name for p in (demo / "outbox").rglob("*.eml")) == first
    assert sent_deliveries() == 2
    assert not (demo / "outbox" / "2").exists()
