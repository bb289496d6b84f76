"""End to end in a real browser: the daemon's draft job mails the editor a link -> she signs in
on the desk, drops one story, adds a near miss, pins one, writes a note, sends a test to herself
([TEST], received), approves -> the daemon sends at its send time -> both subscribers receive the
edited issue (note on top, pinned story first, the dropped one absent, the added one present).

`digest serve`'s app runs under uvicorn in a thread; the daemon is a `digest run` subprocess;
feeds come from pytest-httpserver, mail goes to the local aiosmtpd sink; Chromium is Debian's.
Screenshots of the desk at 375 and 1280 px land in test-artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from pytest_httpserver import HTTPServer

from conftest import SMTPSink, free_port
from digest import config
from digest.models import SubscriberStatus
from digest.pipeline.collect import collect
from digest.store import open_store
from digest.store import subscribers as subs
from digest.web import create_app
from test_browser_signup import Server, fits_a_phone, shown, wait_for_mail
from test_daemon import Daemon
from test_web_helpers import ARTIFACTS, chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SECRET = "test-secret-" + "x" * 32  # what test_daemon.Daemon gives the daemon
EDITOR = "editor@example.org"
READERS = ("ann@example.org", "bob@example.org")

KEPT_1 = "SecNumCloud: a page is turning for the French sovereign cloud"
DROPPED = "Sovereign cloud: Bleu passes the SecNumCloud qualification"
PINNED = "CNIL fines a retailer for GDPR breaches"
KEPT_4 = "GDPR: the EDPB adopts guidelines on personal data and AI"
NEAR_MISS = "Hosting news: a regional provider grows"
STORIES = [
    (KEPT_1, "The sovereign cloud doctrine changes: operators must now hold SecNumCloud."),
    (DROPPED, "Bleu obtains SecNumCloud for its sovereign cloud offer."),
    (PINNED, "The CNIL fined a retailer 2 million euros under the GDPR for keeping data."),
    (KEPT_4, "The EDPB says how the GDPR applies when personal data trains a model."),
    (NEAR_MISS, "A regional provider opens a data centre and mentions SecNumCloud plans."),
    ("Weather: a cloudy weekend", "Clouds and rain all weekend in the north."),
]
NOTE = "Three stories matter this week: **start with the CNIL**."


def rss() -> str:
    when = format_datetime(datetime.now(UTC) - timedelta(hours=2))
    items = "".join(
        f"<item><title>{escape(t)}</title><link>https://news.example/{n}</link>"
        f"<guid>https://news.example/{n}</guid><pubDate>{when}</pubDate>"
        f"<description>{escape(d)}</description></item>"
        for n, (t, d) in enumerate(STORIES)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Watch</title><link>https://news.example/</link>{items}</channel></rss>"
    )


def write_config(
    path: Path, *, web_port: int, sink: SMTPSink, feed: str, draft: str, send: str
) -> None:
    path.write_text(
        f"""
[digest]
title = "Veille"
timezone = "UTC"
base_url = "http://127.0.0.1:{web_port}"

[storage]
url = "sqlite:///var/digest.db"

[schedule]
fetch = "0 0 1 1 *"
send = "{send}"
catch_up = "1h"

[daemon]
lock_lease = "2s"

[delivery]
mode = "smtp"
from = "Veille <veille@digest.example>"
subject = "{{title}} #{{number}}: {{lead}}"

[smtp]
host = "{sink.host}"
port = {sink.port}
security = "none"
password_env = "DIGEST_TEST_NO_PASSWORD"
max_attempts = 1

[review]
mode = "required"
editors = ["{EDITOR}"]
draft = "{draft}"
on_deadline = "hold"
floor = 0.5

[[feeds]]
url = "{feed}"
name = "Watch"
allow_private = true

[topics.sovereign_cloud]
title = "Sovereign cloud"
titles = {{ fr = "Cloud souverain" }}
include = ["sovereign cloud", "SecNumCloud"]
threshold = 2.0

[topics.data_protection]
title = "Data protection"
titles = {{ fr = "Protection des données" }}
include = ["GDPR", "personal data", "CNIL"]
threshold = 2.0
""",
        encoding="utf-8",
    )


@pytest.fixture
def site(
    workdir: Path, smtp_sink: SMTPSink, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, int]]:
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    httpserver.expect_request("/feed.xml").respond_with_data(
        rss(), content_type="application/rss+xml"
    )
    port = free_port()
    path = workdir / "digest.toml"
    never = "0 0 1 1 *"
    write_config(
        path,
        web_port=port,
        sink=smtp_sink,
        feed=httpserver.url_for("/feed.xml"),
        draft="*/2 * * * * *",
        send=never,
    )
    settings = config.load(path)
    store = open_store(settings.storage.url)
    collect(settings, store)
    with store.begin() as conn:
        for address in READERS:
            subs.add_subscriber(
                conn,
                address,
                status=SubscriberStatus.ACTIVE,
                source="cli",
                now=datetime.now(UTC),
            )
    with Server(create_app(settings, store), port):
        yield path, port
    store.close()


def text_of(msg: Any) -> str:
    return " ".join(str(msg.get_body(preferencelist=("plain",)).get_content()).split())


def test_an_editor_curates_tests_and_approves_on_the_desk_then_the_daemon_sends_it(
    site: tuple[Path, int], smtp_sink: SMTPSink, httpserver: HTTPServer
) -> None:
    path, port = site
    ARTIFACTS.mkdir(exist_ok=True)

    # 1. The daemon's draft job builds the draft and mails the editor a link; nothing else.
    daemon = Daemon(path.parent, path)
    try:
        [ready] = wait_for_mail(smtp_sink, EDITOR, 1)
    finally:
        assert daemon.terminate() == 0
    assert "ready for review" in ready["Subject"]
    assert [r for m in smtp_sink.received for r in m.rcpt_tos] == [EDITOR]
    [link] = re.findall(rf"http://127\.0\.0\.1:{port}/desk/login/\S+", text_of(ready))

    def click(target: Any) -> None:
        """Scroll the button into view and let the layout settle, then click it: clicking
        straight away lost the click when the desk (with its framed preview) had to scroll."""
        target.scroll_into_view_if_needed()
        box = None
        for _ in range(40):
            now = target.bounding_box()
            if now == box:
                break
            box = now
            page.wait_for_timeout(50)
        target.click()

    def after(done: str) -> None:
        """The action's redirect back to the desk has fully loaded (the framed preview too)."""
        page.wait_for_url(f"**/desk?done={done}")
        page.wait_for_load_state("load")

    with chromium() as browser:
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, locale="en-GB", java_script_enabled=False
        )
        page = context.new_page()
        # 2. The link shows a button (scanners open links); the button signs her in.
        page.goto(link)
        click(page.get_by_role("button", name="Sign in"))
        shown(page.get_by_text(f"Signed in as {EDITOR}."))
        shown(page.get_by_role("heading", name="Draft of issue #1"))
        # Click only once the page (the framed preview too) has loaded: a form submitted while
        # the frame still loads can be dropped by the browser.
        page.wait_for_load_state("load")

        # 3. Drop one, add the near miss, pin one, write the note.
        click(page.get_by_role("button", name=f"Drop: {DROPPED}"))
        after("dropped")
        shown(page.get_by_text("Dropped from the draft."))
        near = page.get_by_role("region", name="Near misses")
        shown(near.get_by_text(NEAR_MISS))
        click(near.get_by_role("button", name=f"Add: {NEAR_MISS}"))
        after("added")
        shown(page.get_by_text("Added to the draft."))
        click(page.get_by_role("button", name=f"Make it the lead: {PINNED}"))
        after("pinned")
        shown(page.get_by_text("That story is now the lead."))
        page.get_by_role("textbox", name="Editor's note").fill(NOTE)
        click(page.get_by_role("button", name="Save the note"))
        after("note")
        shown(page.get_by_text("Note saved."))

        # 4. A test to herself: received, marked [TEST]; nobody else gets anything.
        click(page.get_by_role("button", name="Send a test to me"))
        after("test")
        shown(page.get_by_text("Test sent: check your inbox."))
        test_msg = wait_for_mail(smtp_sink, EDITOR, 2)[1]
        assert test_msg["Subject"].startswith("[TEST] ")
        assert "start with the CNIL" in text_of(test_msg)
        assert {r for m in smtp_sink.received for r in m.rcpt_tos} == {EDITOR}

        # 5. Approve; the desk as it stands, at 1280 and 375 px.
        click(page.get_by_role("button", name="Approve", exact=True))
        after("approved")
        shown(page.get_by_text(f"Approved by {EDITOR}: the next send delivers it."))
        page.wait_for_load_state("load")  # the framed email preview too
        assert "start with the CNIL" in page.frame_locator("iframe").locator("body").inner_text()
        page.screenshot(path=str(ARTIFACTS / "desk-1280.png"), full_page=True)
        page.set_viewport_size({"width": 375, "height": 800})
        page.goto(f"http://127.0.0.1:{port}/desk")
        page.wait_for_load_state("load")
        fits_a_phone(page)
        page.screenshot(path=str(ARTIFACTS / "desk-375.png"), full_page=True)
        page.goto(f"http://127.0.0.1:{port}/desk?lang=fr")
        shown(page.get_by_role("heading", name="Bureau de la rédaction"))
        context.close()

    # 6. The daemon sends at its send time: both subscribers get the edited issue.
    write_config(
        path,
        web_port=port,
        sink=smtp_sink,
        feed=httpserver.url_for("/feed.xml"),
        draft="0 0 1 1 *",
        send="*/2 * * * * *",
    )
    daemon = Daemon(path.parent, path)
    try:
        issues = [wait_for_mail(smtp_sink, reader, 1)[0] for reader in READERS]
        daemon.wait_for(lambda rec: rec.get("message", "").startswith("send done:"))
    finally:
        assert daemon.terminate() == 0
    assert sorted(r for m in smtp_sink.received[2:] for r in m.rcpt_tos) == sorted(READERS)
    for msg in issues:
        assert msg["Subject"] == f"Veille #1: {PINNED}"
        text = text_of(msg)
        assert DROPPED not in text
        assert NEAR_MISS in text
        note_at = text.find("start with the CNIL")
        assert 0 <= note_at < text.find(PINNED) < text.find(KEPT_1)
        assert text.find(PINNED) < text.find(KEPT_4)
        html = str(msg.get_body(preferencelist=("html",)).get_content())
        assert "<strong>start with the CNIL</strong>" in html
