"""Never clipped: whatever the issue's size, the email's HTML part stays under Gmail's ~102 KB
clipping point (later entries shortened to title + source, then "N more articles in the online
issue"), and the plain-text part is bounded likewise. Run as a user would: feeds over HTTP,
`digest run --once`, the message read back from the outbox."""

from __future__ import annotations

import email
import email.policy
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from conftest import run_cli
from digest.models import IssueContent, IssueEntry, IssueSection
from digest.render import HTML_BUDGET, personalize, render_issue

pytestmark = pytest.mark.slow

WORDS = (  # noqa: SIM905  (a word list reads best as prose)
    "agency answer april area authority bank board budget business capital case centre change "
    "city committee community company contract council country court crisis customer data deal "
    "decision department design development director district economy education election energy "
    "europe evidence family figure finance force future government group growth health history "
    "hospital house idea industry inquiry interest issue journey justice labour land law leader "
    "level library light market media meeting member minister model money month morning "
    "movement nation network news night office officer operation opinion order owner paper "
    "parliament partner party patient pension people period plan platform police policy power "
    "practice press price prison problem process product programme project property proposal "
    "public quality question rate reason record reform region report research resource result "
    "review right risk river road rule safety scheme school science season sector security "
    "service share site society software source space staff standard station strategy street "
    "student study summer support survey system talent target team technology term test theatre "
    "thing threat time trade training transport travel treaty trial trust union unit university "
    "user valley value version village vision voice vote wage water wealth week welfare winter "
    "woman worker world writer year youth"
).split()


def feed_xml(n: int, rng: random.Random, now: datetime) -> str:
    items = []
    for i in range(20):
        topic = "cloud" if (n + i) % 2 else "privacy"

        def words(k: int) -> str:
            return " ".join(rng.choice(WORDS) for _ in range(k))

        title = f"{words(4).capitalize()} {topic} {words(4)}"
        body = " ".join(f"{words(14).capitalize()} {topic} {words(6)}." for _ in range(6))
        when = format_datetime(now - timedelta(hours=n + i))
        items.append(
            f"<item><title>{title}</title><link>https://site{n}.example.com/a/{i}</link>"
            f"<guid>https://site{n}.example.com/a/{i}</guid><pubDate>{when}</pubDate>"
            f"<description>{body}</description></item>"
        )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel>'
        f"<title>Feed {n}</title><link>https://site{n}.example.com/</link>"
        f"<description>x</description><language>en</language>{''.join(items)}</channel></rss>"
    )


def config(tmp_path: Path, httpserver: HTTPServer, base_url: str | None) -> Path:
    feeds = "".join(
        f'[[feeds]]\nurl = "{httpserver.url_for(f"/feed{n}.xml")}"\nname = "Feed {n}"\n'
        for n in range(40)
    )
    path = tmp_path / "digest.toml"
    path.write_text(
        '[digest]\ntitle = "Big digest"\nlanguage = "en"\nmax_items_per_topic = 100\n'
        + (f'base_url = "{base_url}"\n' if base_url else "")
        + f'[storage]\nurl = "sqlite:///{tmp_path}/d.db"\n'
        f'[delivery]\nfrom = "Big <big@example.org>"\noutbox_dir = "{tmp_path}/outbox"\n'
        "[fetch]\nallow_private = true  # the test feeds are on loopback\n"
        '[topics.cloud]\ntitle = "Cloud"\ninclude = ["cloud"]\n'
        '[topics.privacy]\ntitle = "Privacy"\ninclude = ["privacy"]\n' + feeds
    )
    (tmp_path / "people.csv").write_text("email,name\nann@example.org,Ann\n")
    return path


def parts(eml: Path) -> tuple[str, str]:
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    html = msg.get_body(("html",))
    text = msg.get_body(("plain",))
    assert html is not None
    assert text is not None
    return html.get_content(), text.get_content().replace("\r\n", "\n")


@pytest.fixture
def forty_feeds(httpserver: HTTPServer) -> HTTPServer:
    rng = random.Random(15)
    now = datetime.now(UTC)
    for n in range(40):
        httpserver.expect_request(f"/feed{n}.xml").respond_with_data(
            feed_xml(n, rng, now), content_type="application/rss+xml"
        )
    return httpserver


def test_must_show_200_kept_items_give_an_html_part_under_102_kb_linking_the_online_issue(
    tmp_path: Path,
    forty_feeds: HTTPServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DIGEST_SECRET", "clip-test-secret-" + "x" * 20)
    cfg = config(tmp_path, forty_feeds, "https://news.example.org")
    assert (
        run_cli(
            capsys, "--config", str(cfg), "subscribers", "import", str(tmp_path / "people.csv")
        ).code
        == 0
    )
    done = run_cli(capsys, "--config", str(cfg), "run", "--once")
    assert done.code == 0, done.err
    assert "kept cloud 400, privacy 400 · summarized 200" in done.err  # 100 per topic in the issue
    html, text = parts(tmp_path / "outbox" / "1" / "ann@example.org.eml")
    size = len(html.encode("utf-8"))
    print(
        f"200-item issue: HTML part {size} bytes ({size / 1024:.1f} KiB), text {len(text.encode())}"
    )
    assert size < 100 * 1024  # under 100 KiB, so under Gmail's ~102 KB
    assert "200 articles" in html
    assert "https://news.example.org/issues/1" in html
    assert "more articles in the online issue</a>" in html
    # The footer (and its unsubscribe link) is there: nothing was clipped away.
    assert "https://news.example.org/unsubscribe/" in html
    assert html.rstrip().endswith("</html>")
    assert len(text.encode("utf-8")) < 100 * 1024
    assert "more articles in the online issue:\nhttps://news.example.org/issues/1" in text


def test_without_an_online_issue_the_items_are_capped_and_check_warns(
    tmp_path: Path,
    forty_feeds: HTTPServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DIGEST_SECRET", "clip-test-secret-" + "x" * 20)
    cfg = config(tmp_path, forty_feeds, None)
    checked = run_cli(capsys, "--config", str(cfg), "check")
    assert "without [digest] base_url" in checked.err
    run_cli(capsys, "--config", str(cfg), "subscribers", "import", str(tmp_path / "people.csv"))
    assert run_cli(capsys, "--config", str(cfg), "run", "--once").code == 0
    html, _text = parts(tmp_path / "outbox" / "1" / "ann@example.org.eml")
    assert len(html.encode("utf-8")) < 100 * 1024
    assert "more articles did not fit in this email." in html
    assert "/unsubscribe/" not in html  # no base_url: the mailto
    assert "mailto:big@example.org?subject=unsubscribe" in html


WHEN = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def big_issue(n: int, summary_words: int = 120) -> IssueContent:
    entries = tuple(
        IssueEntry(
            item_id=i,
            url=f"https://site{i}.example.com/a/{i}",
            title=f"Headline number {i} about the cloud",
            source=f"Source {i}",
            published=WHEN,
            summary=" ".join(["word"] * summary_words) + ".",
            topic_id="cloud",
            score=1.0,
        )
        for i in range(1, n + 1)
    )
    return IssueContent(
        number=3,
        title="Digest",
        language="en",
        timezone="UTC",
        created=WHEN,
        period_start=WHEN - timedelta(days=7),
        period_end=WHEN,
        sections=(IssueSection("cloud", "Cloud", entries),),
        base_url="https://news.example.org",
    )


@pytest.mark.parametrize("n", [1, 40, 120, 400])
def test_the_html_part_stays_within_budget_whatever_the_size(n: int) -> None:
    rendered = render_issue(big_issue(n))
    html, text = personalize(
        rendered,
        name="A rather long reader name " * 3,
        unsubscribe_url="https://news.example.org/unsubscribe/" + "u" * 120,
        preferences_url="https://news.example.org/preferences/" + "p" * 120,
        email="someone.with.a.long.address@example.org",
    )
    assert len(html.encode()) < 100 * 1024
    assert len(text.encode()) < 100 * 1024
    assert len(rendered.html.encode()) <= HTML_BUDGET
    if n <= 40:
        assert "more articles in the online issue" not in html
    else:
        assert "more articles in the online issue" in html
        # Every entry still listed (title + source), as many as fit in full.
        assert "Headline number 120 about the cloud" in html
