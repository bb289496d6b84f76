"""The web front's archive, one-click unsubscribe, preferences, refusals and security headers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import httpx
import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from conftest import free_port
from digest.config import Settings
from digest.models import SubscriberStatus
from digest.render import page_style_csp_source
from digest.store import Store, open_store
from digest.store import subscribers as subs
from digest.web import create_app
from test_web_helpers import (
    NOW,
    SECRET,
    add_active,
    csrf_of,
    link_token,
    make_settings,
    sample_issue,
    status_of,
    store_issue,
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = open_store(settings.storage.url)
    yield s
    s.close()


@pytest.fixture
def client(settings: Settings, store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(settings, store, secret=SECRET, clock=lambda: NOW)) as c:
        yield c


# --------------------------------------------------------------------------- headers


def test_every_page_carries_strict_security_headers(client: TestClient) -> None:
    for path in ("/", "/subscribe", "/feed.xml", "/static/style.css", "/nowhere"):
        headers = client.get(path).headers
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp
        assert "script-src 'none'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert "strict-transport-security" not in headers  # plain http base


def test_hsts_is_sent_when_base_url_is_https(tmp_path: Path, store: Store) -> None:
    settings = make_settings(tmp_path, digest={"base_url": "https://digest.example"})
    with TestClient(create_app(settings, store, secret=SECRET)) as c:
        response = c.get("/")
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert "Secure" in response.headers["set-cookie"]


def test_pages_use_no_script_and_no_third_party_asset(client: TestClient) -> None:
    for path in ("/", "/subscribe"):
        html = client.get(path).text
        assert "<script" not in html
        assert "http://" not in html.replace('href="http://testserver', "")
        assert "https://" not in html


def test_pages_declare_their_language_and_label_every_field(client: TestClient) -> None:
    english = client.get("/subscribe").text
    assert '<html lang="en">' in english
    assert '<label for="email">Email address</label>' in english
    assert '<label for="topic-sovereign_cloud">Sovereign cloud</label>' in english
    french = client.get("/subscribe", headers={"Accept-Language": "fr-FR,fr;q=0.9"}).text
    assert '<html lang="fr">' in french
    assert "Adresse électronique" in french
    assert "Cloud souverain" in french
    assert '<html lang="fr">' in client.get("/subscribe?lang=fr").text


# --------------------------------------------------------------------------- archive


def test_archive_lists_issues_newest_first_with_localized_dates(
    client: TestClient, store: Store
) -> None:
    store_issue(store, sample_issue(1))
    store_issue(store, sample_issue(2))
    html = client.get("/").text
    assert html.index("/issues/2") < html.index("/issues/1")
    assert "March 2, 2026" in html
    assert "2 articles" in html
    french = client.get("/?lang=fr").text
    assert "2 mars 2026" in french
    assert 'href="/issues/1?lang=fr"' in french


def test_issue_page_shows_the_issue_with_its_stylesheet_allowed_by_hash(
    client: TestClient, store: Store
) -> None:
    store_issue(store, sample_issue(1))
    response = client.get("/issues/1")
    assert response.status_code == 200
    assert "A page is turning for the French sovereign cloud" in response.text
    csp = response.headers["content-security-policy"]
    assert page_style_csp_source() in csp
    assert "unsafe-inline" not in csp
    assert "{{" not in response.text  # no personal placeholder left on the public page


def test_missing_issue_is_a_clear_404_page(client: TestClient) -> None:
    response = client.get("/issues/99")
    assert response.status_code == 404
    assert "There is no page at this address." in response.text


def test_feed_is_atom_with_one_entry_per_issue(client: TestClient, store: Store) -> None:
    store_issue(store, sample_issue(1))
    store_issue(store, sample_issue(2))
    response = client.get("/feed.xml")
    assert response.headers["content-type"].startswith("application/atom+xml")
    ns = {"a": "http://www.w3.org/2005/Atom"}
    root = ET.fromstring(response.content)
    entries = root.findall("a:entry", ns)
    assert [e.findtext("a:id", namespaces=ns) for e in entries] == [
        "http://testserver/issues/2",
        "http://testserver/issues/1",
    ]
    assert "CNIL fines a data broker" in (entries[0].findtext("a:summary", namespaces=ns) or "")
    assert root.findtext("a:updated", namespaces=ns) == "2026-03-02T08:00:00Z"


def test_a_database_failure_is_a_clear_503_page_not_a_traceback(
    client: TestClient, store: Store
) -> None:
    cascade = "" if store.is_sqlite else " CASCADE"  # PostgreSQL: deliveries refer to issues
    with store.begin() as conn:
        conn.execute(text("DROP TABLE issue_items"))
        conn.execute(text(f"DROP TABLE issues{cascade}"))
    response = client.get("/")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "120"
    assert "Something went wrong on our side" in response.text
    assert "Traceback" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"


# --------------------------------------------------------------------------- unsubscribe


def test_one_click_post_unsubscribes_at_once_without_cookie_or_form_token(
    client: TestClient, store: Store
) -> None:
    reader = add_active(store)
    client.cookies.clear()
    response = client.post(
        f"/unsubscribe/{link_token('unsubscribe', reader)}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert status_of(store, reader.email) is SubscriberStatus.UNSUBSCRIBED


def test_get_on_the_unsubscribe_link_only_shows_a_button(client: TestClient, store: Store) -> None:
    reader = add_active(store)
    response = client.get(f"/unsubscribe/{link_token('unsubscribe', reader)}")
    assert response.status_code == 200
    assert '<button type="submit">Unsubscribe</button>' in response.text
    assert response.headers["cache-control"] == "no-store"
    assert status_of(store, reader.email) is SubscriberStatus.ACTIVE


def test_the_unsubscribe_button_works_with_its_csrf_token(client: TestClient, store: Store) -> None:
    reader = add_active(store)
    url = f"/unsubscribe/{link_token('unsubscribe', reader)}"
    csrf = csrf_of(client.get(url).text)
    response = client.post(url, data={"csrf_token": csrf})
    assert response.status_code == 200
    assert "will not receive any further email" in response.text
    assert status_of(store, reader.email) is SubscriberStatus.UNSUBSCRIBED


def test_form_post_without_csrf_token_is_refused_with_a_clear_page(
    client: TestClient, store: Store
) -> None:
    reader = add_active(store)
    url = f"/unsubscribe/{link_token('unsubscribe', reader)}"
    client.get(url)  # the browser has its cookie, but the form lacks the token
    response = client.post(url, data={})
    assert response.status_code == 403
    assert "security token is missing or wrong" in response.text
    assert status_of(store, reader.email) is SubscriberStatus.ACTIVE


def test_csrf_token_from_another_browser_is_refused(
    settings: Settings, store: Store, client: TestClient
) -> None:
    reader = add_active(store)
    url = f"/unsubscribe/{link_token('unsubscribe', reader)}"
    with TestClient(create_app(settings, store, secret=SECRET)) as attacker:
        foreign = csrf_of(attacker.get(url).text)
    client.get(url)
    assert client.post(url, data={"csrf_token": foreign}).status_code == 403
    assert status_of(store, reader.email) is SubscriberStatus.ACTIVE


def test_tampered_token_is_refused_with_a_clear_page(client: TestClient, store: Store) -> None:
    reader = add_active(store)
    token = link_token("unsubscribe", reader)
    other_key = "0" * 32
    for bad in (token.replace(reader.token_key, other_key), token[:-2], "garbage"):
        response = client.post(f"/unsubscribe/{bad}", data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 400
        assert "This link is not valid" in response.text
    assert status_of(store, reader.email) is SubscriberStatus.ACTIVE


def test_a_token_made_for_preferences_cannot_unsubscribe(client: TestClient, store: Store) -> None:
    reader = add_active(store)
    response = client.post(
        f"/unsubscribe/{link_token('preferences', reader)}",
        data={"List-Unsubscribe": "One-Click"},
    )
    assert response.status_code == 400
    assert status_of(store, reader.email) is SubscriberStatus.ACTIVE


def test_link_of_an_erased_subscriber_says_it_leads_nowhere(
    client: TestClient, store: Store
) -> None:
    reader = add_active(store)
    with store.begin() as conn:
        subs.erase_subscriber(conn, SECRET, reader.email)
    response = client.get(f"/unsubscribe/{link_token('unsubscribe', reader)}")
    assert response.status_code == 410
    assert "no longer leads anywhere" in response.text


# --------------------------------------------------------------------------- preferences


def test_preferences_change_topics_and_language(client: TestClient, store: Store) -> None:
    reader = add_active(store)
    url = f"/preferences/{link_token('preferences', reader)}"
    page = client.get(url)
    assert page.status_code == 200
    assert 'id="language-en" name="language" value="en" checked' in page.text
    response = client.post(
        url,
        data={"csrf_token": csrf_of(page.text), "topics": ["data_protection"], "language": "fr"},
    )
    assert response.status_code == 200
    assert "Vos préférences sont enregistrées." in response.text
    with store.connect() as conn:
        record = subs.get_by_email(conn, reader.email)
    assert record is not None
    assert record.topics == ("data_protection",)
    assert record.language == "fr"


def test_preferences_refuse_an_unknown_topic_and_keep_the_old_ones(
    client: TestClient, store: Store
) -> None:
    reader = add_active(store, topics=["sovereign_cloud"])
    url = f"/preferences/{link_token('preferences', reader)}"
    csrf = csrf_of(client.get(url).text)
    response = client.post(url, data={"csrf_token": csrf, "topics": ["horoscopes"]})
    assert response.status_code == 400
    assert "Unknown topic: horoscopes" in response.text
    with store.connect() as conn:
        record = subs.get_by_email(conn, reader.email)
    assert record is not None
    assert record.topics == ("sovereign_cloud",)


def test_preferences_post_without_csrf_changes_nothing(client: TestClient, store: Store) -> None:
    reader = add_active(store)
    url = f"/preferences/{link_token('preferences', reader)}"
    client.get(url)
    response = client.post(url, data={"language": "fr"})
    assert response.status_code == 403
    with store.connect() as conn:
        record = subs.get_by_email(conn, reader.email)
    assert record is not None
    assert record.language is None


# --------------------------------------------------------------------------- digest serve

DIGEST = str(Path(sys.executable).with_name("digest"))


@pytest.mark.slow
def test_digest_serve_answers_on_the_given_port(tmp_path: Path) -> None:
    config = tmp_path / "digest.toml"
    config.write_text(
        f'[digest]\ntitle = "Veille"\n[storage]\nurl = "sqlite:///{tmp_path}/d.db"\n',
        encoding="utf-8",
    )
    port = free_port()
    env = {**os.environ, "DIGEST_SECRET": SECRET.decode(), "DIGEST_CONFIG": str(config)}
    proc = subprocess.Popen(
        [DIGEST, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # A deadline, not a count of tries: a cold start of the command on a loaded machine can
        # take well over the 10 s that 200 short sleeps used to give it.
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/", timeout=30)
                break
            except httpx.ConnectError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                if time.monotonic() > deadline:
                    pytest.fail("digest serve did not start within 60 s")
                time.sleep(0.05)
        assert response.status_code == 200
        assert "No issue has been published yet." in response.text
        assert "server" not in response.headers  # no version advertised
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_digest_serve_without_secret_says_which_variable_is_missing(tmp_path: Path) -> None:
    config = tmp_path / "digest.toml"
    config.write_text(f'[storage]\nurl = "sqlite:///{tmp_path}/d.db"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "DIGEST_SECRET"}
    done = subprocess.run(
        [DIGEST, "--config", str(config), "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "DIGEST_SECRET is not set" in done.stderr
    assert "Traceback" not in done.stderr
