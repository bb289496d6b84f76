"""Hostile requests get a proper 4xx page with every security header, never a bare 500, and
no error (with a traceback) in the log; links on our pages never lead off-site."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from digest.config import Settings
from digest.models import SubscriberStatus
from digest.store import Store, open_store
from digest.web import create_app
from digest.web.app import local_path
from digest.web.archive import issue_number
from test_web_helpers import NOW, SECRET, add_active, link_token, make_settings, status_of


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
    app = create_app(settings, store, secret=SECRET, clock=lambda: NOW)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def assert_security_headers(response: httpx.Response) -> None:
    csp = response.headers.get("content-security-policy", "")
    assert "script-src 'none'" in csp, response.status_code
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


# --------------------------------------------------------------------------- item 9


@pytest.mark.parametrize("form", ["subscribe", "unsubscribe", "preferences"])
def test_non_ascii_csrf_token_is_a_403_page_not_a_500(
    client: TestClient, store: Store, form: str, caplog: pytest.LogCaptureFixture
) -> None:
    reader = add_active(store)
    path = "/subscribe" if form == "subscribe" else f"/{form}/{link_token(form, reader)}"
    client.get(path)  # the browser has its cookie; the form carries a forged token
    response = client.post(path, data={"csrf_token": "é" * 64, "email": "new@example.org"})
    assert response.status_code == 403
    assert "security token is missing or wrong" in response.text
    assert_security_headers(response)
    assert status_of(store, reader.email) is SubscriberStatus.ACTIVE
    assert no_errors_logged(caplog) == []


@pytest.mark.parametrize(
    "number", ["999999999999999999999", "9" * 5000, "2147483648", "0", "-1", "١٢", "1e3"]
)
def test_issue_numbers_out_of_range_are_a_404_page(
    client: TestClient, number: str, caplog: pytest.LogCaptureFixture
) -> None:
    response = client.get(f"/issues/{number}")
    assert response.status_code == 404
    assert "There is no page at this address" in response.text
    assert_security_headers(response)
    assert no_errors_logged(caplog) == []


def test_issue_number_accepts_only_plain_digits_within_the_column() -> None:
    assert issue_number("42") == 42
    assert issue_number("2147483647") == 2**31 - 1
    for bad in ("", "0", "2147483648", "9" * 5000, "٣", "+1", " 1", "1.0"):
        assert issue_number(bad) is None


def test_an_unexpected_error_is_a_500_page_with_the_security_headers(
    settings: Settings, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings, store, secret=SECRET, clock=lambda: NOW)

    async def boom(_request: Request) -> Response:
        raise RuntimeError("a bug")

    app.router.routes.insert(0, Route("/boom", boom))
    with TestClient(app, raise_server_exceptions=False) as c:
        response = c.get("/boom")
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.text
    assert_security_headers(response)
    # A real bug is logged once, as an error, with its traceback.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None


def test_a_garbled_csrf_cookie_is_treated_as_no_cookie(client: TestClient) -> None:
    for value in ("é" * 30, "a" * 19, "a" * 101, "a b" * 10):
        raw = f"digest_csrf={value}".encode("latin-1")
        response = client.get("/subscribe", headers={"Cookie": raw})  # type: ignore[dict-item]
        assert response.status_code == 200
        assert "digest_csrf=" in response.headers["set-cookie"]  # a fresh one is set


# --------------------------------------------------------------------------- item 15


def test_404_for_a_double_slash_path_links_only_to_this_site(
    settings: Settings, store: Store
) -> None:
    app = create_app(settings, store, secret=SECRET, clock=lambda: NOW)

    async def get(path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await c.get("http://testserver" + path)

    for path in ("//evil.example/x", "/\\evil.example/x", "///evil.example/x"):
        response = asyncio.run(get(path))
        assert response.status_code == 404
        assert_security_headers(response)
        hrefs = re.findall(r'href="([^"]*)"', response.text)
        assert hrefs
        for href in hrefs:
            assert href.startswith(("/", "#")), href
            assert not href.startswith(("//", "/\\")), href
        assert any(h.endswith("?lang=fr") for h in hrefs)  # the switch is there, on-site


def test_local_path_never_names_another_host() -> None:
    assert local_path("//evil.example/x") == "/evil.example/x"
    assert local_path("/\\/evil") == "/evil"
    assert local_path("/subscribe") == "/subscribe"
    assert local_path("") == "/"
