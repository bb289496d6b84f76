"""The editor's desk on the web: one-time mailed sign-in, the session cookie, CSRF, the actions,
the email preview, refusals and security headers (in process, mail to the outbox folder)."""

from __future__ import annotations

import email
import email.policy
import re
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from digest.config import Settings, parse_settings
from digest.config.brand import BrandSection
from digest.pipeline.collect import collect
from digest.pipeline.draft import build_draft, current
from digest.store import Store, open_store
from digest.store.drafts import decisions
from digest.web import create_app
from test_web_helpers import SECRET, csrf_of

REPO = Path(__file__).resolve().parent.parent
EDITOR = "editor@example.org"


def desk_settings(tmp_path: Path, **review: Any) -> Settings:
    topics = tomllib.loads((REPO / "config" / "topics.toml").read_text(encoding="utf-8"))
    feeds = sorted((REPO / "examples" / "feeds").glob("*.xml"))
    return parse_settings(
        {
            **topics,
            "digest": {"title": "Veille", "base_url": "http://testserver"},
            "storage": {"url": f"sqlite:///{tmp_path}/digest.db"},
            "delivery": {"mode": "outbox", "outbox_dir": str(tmp_path / "outbox")},
            "feeds": [{"url": str(f)} for f in feeds],
            "review": {"mode": "required", "editors": [EDITOR], **review},
        },
        "test.toml",
    )


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def desk(tmp_path: Path, clock: Clock) -> Iterator[tuple[Settings, Store, TestClient]]:
    settings = desk_settings(tmp_path)
    store = open_store(settings.storage.url)
    collect(settings, store)
    clock.now = datetime.now(UTC)  # after the items were stored
    with TestClient(create_app(settings, store, secret=SECRET, clock=clock)) as client:
        yield settings, store, client
    store.close()


def mailed_link(settings: Settings, address: str) -> str:
    [eml] = (Path(settings.delivery.outbox_dir) / "desk").glob(f"{address}*.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    text = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    [link] = re.findall(r"http://testserver(/desk/login/\S+)", text)
    eml.unlink()
    return str(link)


def sign_in(client: TestClient, settings: Settings) -> None:
    page = client.get("/desk")
    client.post("/desk/login", data={"email": EDITOR, "csrf_token": csrf_of(page.text)})
    link = mailed_link(settings, EDITOR)
    confirm = client.get(link)
    assert confirm.status_code == 200
    done = client.post(link, data={"csrf_token": csrf_of(confirm.text)}, follow_redirects=False)
    assert done.status_code == 303


def test_the_desk_does_not_exist_without_editors(tmp_path: Path) -> None:
    settings = desk_settings(tmp_path, editors=[])
    store = open_store(settings.storage.url)
    with TestClient(create_app(settings, store, secret=SECRET)) as client:
        assert client.get("/desk").status_code == 404
    store.close()


def test_an_editor_signs_in_once_with_the_mailed_link_and_gets_a_strict_session_cookie(
    desk: tuple[Settings, Store, TestClient],
) -> None:
    settings, _, client = desk
    page = client.get("/desk")
    assert "Email me a sign-in link" in page.text
    sent = client.post("/desk/login", data={"email": EDITOR, "csrf_token": csrf_of(page.text)})
    assert "sign-in link is on its way" in sent.text
    link = mailed_link(settings, EDITOR)

    # Opening the link signs nobody in (mail scanners open links): a button does.
    confirm = client.get(link)
    assert EDITOR in confirm.text
    assert "digest_desk" not in confirm.headers.get("set-cookie", "")
    done = client.post(link, data={"csrf_token": csrf_of(confirm.text)}, follow_redirects=False)
    cookie = done.headers["set-cookie"]
    assert cookie.startswith("digest_desk=")
    for flag in ("HttpOnly", "SameSite=Strict", "Path=/desk", "Max-Age=43200"):
        assert flag in cookie
    assert "Secure" not in cookie  # plain http base_url
    assert "Signed in as editor@example.org" in client.get("/desk").text

    # Single use: the same link again is refused.
    again = client.post(link, data={"csrf_token": csrf_of(confirm.text)})
    assert again.status_code == 410
    assert "already been used" in again.text


def test_someone_else_gets_the_same_answer_and_no_mail(
    desk: tuple[Settings, Store, TestClient],
) -> None:
    settings, _, client = desk
    page = client.get("/desk")
    sent = client.post(
        "/desk/login", data={"email": "mallory@example.org", "csrf_token": csrf_of(page.text)}
    )
    assert "sign-in link is on its way" in sent.text
    assert not (Path(settings.delivery.outbox_dir) / "desk").exists()


def test_a_sign_in_link_expires_after_15_minutes(
    desk: tuple[Settings, Store, TestClient], clock: Clock
) -> None:
    settings, _, client = desk
    page = client.get("/desk")
    client.post("/desk/login", data={"email": EDITOR, "csrf_token": csrf_of(page.text)})
    link = mailed_link(settings, EDITOR)
    clock.now += timedelta(minutes=16)
    assert client.get(link).status_code == 410


def test_the_editor_curates_the_draft_and_every_action_is_recorded_with_her_address(
    desk: tuple[Settings, Store, TestClient],
) -> None:
    settings, store, client = desk
    sign_in(client, settings)
    built = client.post("/desk/build", data={"csrf_token": csrf_of(client.get("/desk").text)})
    assert "Draft of issue #1" in built.text
    view = current(settings, store)
    assert view is not None
    first, second = view.entry_list()[:2]

    def post(path: str, **fields: str) -> Any:
        token = csrf_of(client.get("/desk").text)
        return client.post(path, data={"csrf_token": token, **fields})

    assert "Dropped from the draft" in post("/desk/drop", item=str(first.item_id)).text
    assert "now the lead" in post("/desk/pin", item=str(second.item_id)).text
    post("/desk/summary", item=str(second.item_id), summary="Our own words.")
    post("/desk/note", note="Hello **readers**")
    view = current(settings, store)
    assert view is not None
    assert first.item_id not in [e.item_id for e in view.entries]
    assert view.entry_list()[0].item_id == second.item_id
    assert view.entry_list()[0].summary == "Our own words."
    assert view.draft.note == "Hello **readers**"
    with store.connect() as conn:
        acts = [(d.action, d.editor) for d in decisions(conn)]
    assert acts == [("drop", EDITOR), ("pin", EDITOR)]

    # The preview is the email itself, framed by the desk only, with no script allowed.
    preview = client.get("/desk/preview")
    assert "<strong>readers</strong>" in preview.text
    assert "Our own words." in preview.text
    assert "sandbox" in preview.headers["content-security-policy"]
    assert "script" not in preview.headers["content-security-policy"]
    assert preview.headers["x-frame-options"] == "SAMEORIGIN"

    tested = post("/desk/test")
    assert "Test sent" in tested.text
    [test_eml] = (Path(settings.delivery.outbox_dir) / "tests").glob("*.eml")
    assert "[TEST]" in test_eml.read_text(encoding="utf-8")
    approved = post("/desk/approve")
    assert "Approved by editor@example.org" in approved.text


def test_desk_forms_need_the_csrf_token_and_a_session(
    desk: tuple[Settings, Store, TestClient],
) -> None:
    settings, _, client = desk
    token = csrf_of(client.get("/desk").text)
    # Signed out: refused, whatever the form says.
    assert client.post("/desk/approve", data={"csrf_token": token}).status_code == 403
    sign_in(client, settings)
    # Signed in but no CSRF token: refused.
    assert client.post("/desk/approve", data={}).status_code == 403
    assert client.get("/desk/preview").status_code == 404  # no draft yet


def test_desk_pages_carry_the_same_security_headers_and_no_script(
    desk: tuple[Settings, Store, TestClient],
) -> None:
    _, _, client = desk
    for response in (client.get("/desk"), client.get("/desk?lang=fr")):
        csp = response.headers["content-security-policy"]
        assert "script-src 'none'" in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert "<script" not in response.text
    assert "Bureau de la rédaction" in client.get("/desk?lang=fr").text


def test_the_preview_shows_the_email_with_the_brand_as_readers_get_it(tmp_path: Path) -> None:
    settings = desk_settings(tmp_path).model_copy(
        update={"brand": BrandSection(footer="Sent by the Acme watch team")}
    )
    store = open_store(settings.storage.url)
    collect(settings, store)
    build_draft(settings, store)
    with TestClient(create_app(settings, store, secret=SECRET)) as client:
        sign_in(client, settings)
        preview = client.get("/desk/preview")
    assert preview.status_code == 200
    assert "Sent by the Acme watch team" in preview.text
