"""End to end in a real browser: sign up -> confirmation email -> confirm -> next issue received ->
its List-Unsubscribe one-click POST -> no further issue.

The app runs under uvicorn on 127.0.0.1 in a thread; feeds come from pytest-httpserver, mail goes
to the local aiosmtpd sink; Chromium is Debian's, driven by Playwright.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
import uvicorn
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from conftest import free_port
from digest.config import Settings
from digest.models import SubscriberStatus
from digest.pipeline.outgoing import run_once
from digest.store import Store, open_store
from digest.web import create_app
from test_web_helpers import ARTIFACTS, SECRET, add_active, chromium, make_settings, status_of

pytestmark = [pytest.mark.browser, pytest.mark.slow]

READER = "ann.reader@example.org"
OTHER = "other.reader@example.org"


class Feed:
    """An RSS feed whose items the test adds as time goes by."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, str]] = []

    def add(self, title: str, text: str) -> None:
        self.items.append((title, text, f"https://news.example/{len(self.items) + 1}"))

    def handler(self, _request: Request) -> Response:
        now = format_datetime(datetime.now(UTC) - timedelta(minutes=5))
        entries = "".join(
            f"<item><title>{escape(t)}</title><link>{u}</link><guid>{u}</guid>"
            f"<pubDate>{now}</pubDate><description>{escape(d)}</description></item>"
            for t, d, u in self.items
        )
        body = (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            "<title>Sovereignty Watch</title><link>https://news.example/</link>"
            f"<language>en</language>{entries}</channel></rss>"
        )
        return Response(body, content_type="application/rss+xml; charset=utf-8")


class Server:
    """uvicorn serving the app on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any, port: int) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def setup(
    tmp_path: Path, smtp_sink: Any, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Settings, Store, Feed, str]]:
    monkeypatch.setenv("DIGEST_SECRET", SECRET.decode())
    monkeypatch.chdir(tmp_path)
    feed = Feed()
    httpserver.expect_request("/feed.xml").respond_with_handler(feed.handler)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(
        tmp_path,
        digest={"base_url": base, "timezone": "Europe/Paris"},
        feeds=[
            {
                "url": httpserver.url_for("/feed.xml"),
                "name": "Sovereignty Watch",
                "allow_private": True,
            }
        ],
        delivery={"mode": "smtp", "from": "Veille <veille@digest.example>"},
        smtp={
            "host": smtp_sink.host,
            "port": smtp_sink.port,
            "security": "none",
            "password_env": None,
            "timeout": 5,
            "max_attempts": 1,
        },
    )
    store = open_store(settings.storage.url)
    with Server(create_app(settings, store), port):
        yield settings, store, feed, base
    store.close()


def fits_a_phone(page: Any) -> None:
    """No horizontal scroll at the viewport's 375 px."""
    width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner, f"{page.url}: {width} px wide in a {inner} px window"


def shown(locator: Any) -> None:
    """Wait for ``locator`` to be visible.

    A click that submits a form or follows a link returns once the next page has started
    loading, not once it is drawn: checking ``is_visible()`` right away races the browser.
    """
    from playwright.sync_api import expect

    expect(locator).to_be_visible(timeout=30_000)


def mail_to(sink: Any, address: str) -> list[Any]:
    return [r.message() for r in sink.received if address in r.rcpt_tos]


def wait_for_mail(sink: Any, address: str, count: int, timeout: float = 60) -> list[Any]:
    """The messages to ``address`` once there are ``count`` of them.

    The confirmation email goes out in a background task after the response: the page can be
    shown before the message reaches the SMTP server.
    """
    deadline = time.monotonic() + timeout
    while len(got := mail_to(sink, address)) < count:
        assert time.monotonic() < deadline, f"{len(got)} of {count} messages to {address}"
        time.sleep(0.05)
    return got


def test_sign_up_confirm_receive_and_leave_with_one_click(
    setup: tuple[Settings, Store, Feed, str], smtp_sink: Any
) -> None:
    settings, store, feed, base = setup
    add_active(store, OTHER)
    ARTIFACTS.mkdir(exist_ok=True)

    with chromium() as browser:
        # No JavaScript at all: every page must work without it.
        context = browser.new_context(
            viewport={"width": 375, "height": 800}, locale="en-GB", java_script_enabled=False
        )
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        # 1. The sign-up form, filled as a person would.
        page.goto(f"{base}/subscribe")
        fits_a_phone(page)
        page.get_by_label("Email address").fill(READER)
        page.get_by_label("Sovereign cloud").check()
        page.get_by_label("English").check()
        page.screenshot(path=str(ARTIFACTS / "web-subscribe.png"), full_page=True)
        page.get_by_role("button", name="Subscribe").click()
        shown(page.get_by_role("heading", name="Check your inbox"))
        assert status_of(store, READER) is SubscriberStatus.PENDING

        # 2. The confirmation email, read from the local SMTP server.
        [confirmation] = wait_for_mail(smtp_sink, READER, 1)
        text = confirmation.get_body(preferencelist=("plain",)).get_content()
        [link] = re.findall(rf"{re.escape(base)}/confirm/\S+", text)

        # 3. The link, then the button: the reader is active.
        page.goto(link)
        fits_a_phone(page)
        assert status_of(store, READER) is SubscriberStatus.PENDING
        page.get_by_role("button", name="Confirm my subscription").click()
        shown(page.get_by_role("heading", name="Subscription confirmed"))
        page.screenshot(path=str(ARTIFACTS / "web-confirmed.png"), full_page=True)
        assert status_of(store, READER) is SubscriberStatus.ACTIVE

        # 4. The next issue reaches the reader, with a one-click List-Unsubscribe.
        feed.add(
            "A page is turning for the French sovereign cloud",
            "The sovereign cloud doctrine changes: operators must now hold SecNumCloud.",
        )
        run_once(settings, store)
        [issue] = mail_to(smtp_sink, READER)[1:]
        assert issue["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        [one_click] = re.findall(
            rf"<({re.escape(base)}/unsubscribe/[^>]+)>", issue["List-Unsubscribe"]
        )

        # The archive shows the issue; a mail scanner opening the link unsubscribes nobody.
        page.goto(f"{base}/")
        page.get_by_role("link", name=re.compile("Issue #1")).click()
        shown(page.get_by_text("A page is turning for the French sovereign cloud"))
        fits_a_phone(page)
        page.screenshot(path=str(ARTIFACTS / "web-issue.png"), full_page=True)
        page.goto(one_click)
        fits_a_phone(page)
        page.screenshot(path=str(ARTIFACTS / "web-unsubscribe.png"), full_page=True)
        assert page.get_by_role("button", name="Unsubscribe").is_visible()
        assert status_of(store, READER) is SubscriberStatus.ACTIVE

        # 5. What the mailbox provider sends when the reader clicks "Unsubscribe".
        response = page.request.post(one_click, form={"List-Unsubscribe": "One-Click"})
        assert response.status == 200
        assert status_of(store, READER) is SubscriberStatus.UNSUBSCRIBED
        # Not one CSP violation or script error on any page.
        assert problems == []

    # 6. The issue after that goes out, but not to the reader who left.
    received_before = len(mail_to(smtp_sink, READER))
    feed.add("CNIL fines a data broker under the GDPR", "A GDPR fine for reselling location data.")
    run_once(settings, store)
    assert len(mail_to(smtp_sink, OTHER)) == 2
    assert len(mail_to(smtp_sink, READER)) == received_before
