"""Double opt-in sign-up: confirmation email through the configured delivery, single-use links,
no address enumeration, one confirmation per address per hour, per-IP limit, clear refusals."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from digest.config import Settings
from digest.models import SubscriberStatus
from digest.store import Store, open_store
from digest.store import subscribers as subs
from digest.tokens import make_token
from digest.web import create_app
from digest.web.i18n import STRINGS
from test_web_helpers import NOW, SECRET, add_active, csrf_of, make_settings, status_of

CONFIRM_LINK = re.compile(r"http://testserver/confirm/[A-Za-z0-9_.-]+")


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Web:
    client: TestClient
    store: Store
    clock: Clock
    settings: Settings


def smtp_settings(tmp_path: Path, sink: Any, **web: Any) -> Settings:
    return make_settings(
        tmp_path,
        delivery={"mode": "smtp", "from": "Veille <veille@digest.example>"},
        smtp={
            "host": sink.host,
            "port": sink.port,
            "security": "none",
            "password_env": None,
            "timeout": 5,
            "max_attempts": 1,
        },
        web={"confirm_ttl": "48h", "signups_per_ip_per_hour": 20, **web},
    )


@pytest.fixture
def web(tmp_path: Path, smtp_sink: Any) -> Iterator[Web]:
    settings = smtp_settings(tmp_path, smtp_sink)
    store = open_store(settings.storage.url)
    clock = Clock()
    with TestClient(create_app(settings, store, secret=SECRET, clock=clock)) as client:
        yield Web(client, store, clock, settings)
    store.close()


def sign_up(client: TestClient, address: str, **fields: Any) -> Any:
    csrf = csrf_of(client.get("/subscribe").text)
    return client.post("/subscribe", data={"csrf_token": csrf, "email": address, **fields})


def links_in(sink: Any) -> list[str]:
    found = []
    for received in sink.received:
        body = received.message().get_body(preferencelist=("plain",))
        found.extend(CONFIRM_LINK.findall(body.get_content()))
    return found


def confirm(client: TestClient, link: str) -> Any:
    page = client.get(link)
    if page.status_code != 200:
        return page
    return client.post(link, data={"csrf_token": csrf_of(page.text)})


# --------------------------------------------------------------------------- the happy path


def test_sign_up_sends_a_confirmation_link_that_activates_after_the_button(
    web: Web, smtp_sink: Any
) -> None:
    response = sign_up(web.client, "Ann@Example.org", topics=["data_protection"], language="fr")
    assert response.status_code == 200
    assert "a confirmation link is on its way" in response.text
    assert status_of(web.store, "ann@example.org") is SubscriberStatus.PENDING

    [received] = smtp_sink.received
    assert received.rcpt_tos == ["Ann@example.org"]
    message = received.message()
    assert message["Subject"] == "Confirmez votre abonnement à Veille"
    assert "List-Unsubscribe" not in message  # nothing to leave yet
    html = message.get_body(preferencelist=("html",)).get_content()
    [link] = links_in(smtp_sink)
    assert f'href="{link}"' in html
    assert '<html lang="fr">' in html

    page = web.client.get(link)
    assert page.status_code == 200
    assert "Confirmer mon abonnement" in page.text
    # Opening the link (as a mail scanner does) is not consent.
    assert status_of(web.store, "ann@example.org") is SubscriberStatus.PENDING

    done = web.client.post(link, data={"csrf_token": csrf_of(page.text)})
    assert done.status_code == 200
    assert "Abonnement confirmé" in done.text
    assert "/preferences/" in done.text
    with web.store.connect() as conn:
        record = subs.get_by_email(conn, "ann@example.org")
    assert record is not None
    assert record.status is SubscriberStatus.ACTIVE
    assert record.topics == ("data_protection",)
    assert record.language == "fr"


def test_outbox_mode_writes_the_confirmation_as_an_eml_file(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)  # outbox delivery
    store = open_store(settings.storage.url)
    with TestClient(create_app(settings, store, secret=SECRET, clock=Clock())) as client:
        assert sign_up(client, "bob@example.org").status_code == 200
    [eml] = (tmp_path / "outbox" / "confirmations").glob("*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert CONFIRM_LINK.search(message.get_body(preferencelist=("plain",)).get_content())
    store.close()


# --------------------------------------------------------------------------- no enumeration


def test_the_answer_is_the_same_whether_the_address_is_known_or_not(
    web: Web, smtp_sink: Any
) -> None:
    add_active(web.store, "known@example.org")
    known = sign_up(web.client, "known@example.org")
    unknown = sign_up(web.client, "stranger@example.org")
    assert known.status_code == unknown.status_code == 200
    assert known.text.replace("known@", "X@") == unknown.text.replace("stranger@", "X@")
    # Only the stranger gets an email: the active reader has nothing to confirm.
    assert [r.rcpt_tos for r in smtp_sink.received] == [["stranger@example.org"]]


def test_at_most_one_confirmation_per_address_per_hour(web: Web, smtp_sink: Any) -> None:
    for _ in range(3):
        assert sign_up(web.client, "ann@example.org").status_code == 200
    assert len(smtp_sink.received) == 1
    web.clock.now += timedelta(minutes=61)
    sign_up(web.client, "ann@example.org")
    assert len(smtp_sink.received) == 2
    first, second = links_in(smtp_sink)
    # The newer email retires the older link.
    refused = web.client.get(first)
    assert refused.status_code == 410
    assert "already been used or replaced" in refused.text
    assert confirm(web.client, second).status_code == 200


def test_per_ip_limit_refuses_with_a_clear_page(tmp_path: Path, smtp_sink: Any) -> None:
    settings = smtp_settings(tmp_path, smtp_sink, signups_per_ip_per_hour=3)
    store = open_store(settings.storage.url)
    clock = Clock()
    with TestClient(create_app(settings, store, secret=SECRET, clock=clock)) as client:
        for i in range(3):
            assert sign_up(client, f"p{i}@example.org").status_code == 200
        refused = sign_up(client, "p9@example.org")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "3600"
        assert "Too many sign-up attempts" in refused.text
        clock.now += timedelta(minutes=61)
        assert sign_up(client, "p9@example.org").status_code == 200
    assert len(smtp_sink.received) == 4
    store.close()


# --------------------------------------------------------------------------- refusals


def test_expired_confirmation_link_is_refused_with_a_clear_page(web: Web, smtp_sink: Any) -> None:
    sign_up(web.client, "ann@example.org")
    [link] = links_in(smtp_sink)
    web.clock.now += timedelta(hours=48, seconds=1)
    for response in (web.client.get(link), web.client.post(link, data={})):
        assert response.status_code == 410
        assert "This confirmation link has expired" in response.text
    assert status_of(web.store, "ann@example.org") is SubscriberStatus.PENDING


def test_replayed_confirmation_is_refused_with_a_clear_page(web: Web, smtp_sink: Any) -> None:
    sign_up(web.client, "ann@example.org")
    [link] = links_in(smtp_sink)
    assert confirm(web.client, link).status_code == 200
    replay = web.client.get(link)
    assert replay.status_code == 410
    assert "already been used" in replay.text


def test_replayed_confirmation_cannot_undo_a_later_unsubscribe(web: Web, smtp_sink: Any) -> None:
    sign_up(web.client, "ann@example.org")
    [link] = links_in(smtp_sink)
    page = web.client.get(link)
    web.client.post(link, data={"csrf_token": csrf_of(page.text)})
    with web.store.begin() as conn:
        record = subs.get_by_email(conn, "ann@example.org")
        assert record is not None
        subs.unsubscribe(conn, record.id, NOW + timedelta(minutes=5))
    replay = web.client.post(link, data={"csrf_token": csrf_of(page.text)})
    assert replay.status_code == 410
    assert status_of(web.store, "ann@example.org") is SubscriberStatus.UNSUBSCRIBED


def test_tampered_confirmation_link_is_refused_with_a_clear_page(web: Web, smtp_sink: Any) -> None:
    sign_up(web.client, "ann@example.org")
    [link] = links_in(smtp_sink)
    code, key, expiry, sig = link.rsplit("/", 1)[1].split(".")
    forged = make_token(b"not-our-secret", "confirm", key)
    for bad in (
        f"{code}.{key}.{int(expiry) + 86400}.{sig}",  # expiry pushed back
        forged,
        link.rsplit("/", 1)[1][:-3],
    ):
        response = web.client.get(f"/confirm/{bad}")
        assert response.status_code == 400
        assert "This link is not valid" in response.text
    assert status_of(web.store, "ann@example.org") is SubscriberStatus.PENDING


def test_sign_up_post_without_csrf_token_is_refused_and_sends_nothing(
    web: Web, smtp_sink: Any
) -> None:
    web.client.get("/subscribe")
    response = web.client.post("/subscribe", data={"email": "ann@example.org"})
    assert response.status_code == 403
    assert "security token is missing or wrong" in response.text
    assert smtp_sink.received == []
    with web.store.connect() as conn:
        assert subs.get_by_email(conn, "ann@example.org") is None


def test_confirm_button_without_csrf_token_is_refused(web: Web, smtp_sink: Any) -> None:
    sign_up(web.client, "ann@example.org")
    [link] = links_in(smtp_sink)
    response = web.client.post(link, data={})
    assert response.status_code == 403
    assert status_of(web.store, "ann@example.org") is SubscriberStatus.PENDING


def test_invalid_address_is_named_on_the_form_and_nothing_is_sent(web: Web, smtp_sink: Any) -> None:
    response = sign_up(web.client, "not-an-address", topics=["sovereign_cloud"])
    assert response.status_code == 400
    assert "This does not look like an email address" in response.text
    assert 'value="not-an-address"' in response.text
    assert 'value="sovereign_cloud" aria-describedby="topics-hint" checked' in response.text
    assert smtp_sink.received == []


# --------------------------------------------------------------------------- coming back


def test_unsubscribed_reader_comes_back_only_through_a_new_confirmation(
    web: Web, smtp_sink: Any
) -> None:
    reader = add_active(web.store, "ann@example.org")
    with web.store.begin() as conn:
        subs.unsubscribe(conn, reader.id, NOW)
    web.clock.now += timedelta(days=30)
    sign_up(web.client, "ann@example.org", language="fr")
    assert status_of(web.store, "ann@example.org") is SubscriberStatus.UNSUBSCRIBED
    [link] = links_in(smtp_sink)
    assert confirm(web.client, link).status_code == 200
    assert status_of(web.store, "ann@example.org") is SubscriberStatus.ACTIVE


def test_erased_person_may_sign_up_again_of_their_own_accord(web: Web, smtp_sink: Any) -> None:
    add_active(web.store, "ann@example.org")
    with web.store.begin() as conn:
        subs.erase_subscriber(conn, SECRET, "ann@example.org")
    sign_up(web.client, "ann@example.org")
    [link] = links_in(smtp_sink)
    assert confirm(web.client, link).status_code == 200
    with web.store.connect() as conn:
        assert not subs.is_erased(conn, SECRET, "ann@example.org")


def test_failed_confirmation_email_can_be_retried_at_once(tmp_path: Path, smtp_sink: Any) -> None:
    settings = smtp_settings(tmp_path, smtp_sink)
    dead = settings.model_copy(
        update={"smtp": settings.smtp.model_copy(update={"port": _closed_port()})}
    )
    store = open_store(settings.storage.url)
    with TestClient(create_app(dead, store, secret=SECRET, clock=Clock())) as client:
        assert sign_up(client, "ann@example.org").status_code == 200
    assert smtp_sink.received == []
    with TestClient(create_app(settings, store, secret=SECRET, clock=Clock())) as client:
        sign_up(client, "ann@example.org")
    assert len(smtp_sink.received) == 1
    store.close()


def _closed_port() -> int:
    from conftest import free_port

    return free_port()


def test_english_and_french_have_the_same_words() -> None:
    assert set(STRINGS["en"]) == set(STRINGS["fr"])


# --------------------------------------------------------------------------- abuse (issue 10)


def test_the_per_network_limit_counts_a_whole_ipv6_64_as_one(
    tmp_path: Path, smtp_sink: Any
) -> None:
    settings = smtp_settings(tmp_path, smtp_sink, signups_per_ip_per_hour=2)
    store = open_store(settings.storage.url)
    app = create_app(settings, store, secret=SECRET, clock=Clock())
    answers = []
    for i in range(4):  # four addresses of one /64: one quota
        with TestClient(app, client=(f"2001:db8:1:2::{i + 1:x}", 40000)) as client:
            answers.append(sign_up(client, f"v6-{i}@example.org").status_code)
    assert answers == [200, 200, 429, 429]
    with TestClient(app, client=("2001:db8:1:3::1", 40000)) as other_net:
        assert sign_up(other_net, "v6-other@example.org").status_code == 200
    answers = []
    for host in ("192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.2"):  # IPv4: per address
        with TestClient(app, client=(host, 40000)) as client:
            answers.append(sign_up(client, f"v4-{len(answers)}@example.org").status_code)
    assert answers == [200, 200, 429, 200]
    store.close()


def test_rate_key_is_the_ipv4_address_or_the_ipv6_64() -> None:
    from digest.web.signup import rate_key

    assert rate_key("192.0.2.7") == "192.0.2.7"
    assert rate_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == "2001:db8:1:2::/64"
    assert rate_key("2001:db8:1:2::1%eth0") == "2001:db8:1:2::/64"
    assert rate_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert rate_key("testclient") == "testclient"


def test_pending_sign_ups_are_forgotten_once_their_link_has_expired(
    web: Web, smtp_sink: Any
) -> None:
    sign_up(web.client, "never@example.org")
    with web.store.connect() as conn:
        assert subs.get_by_email(conn, "never@example.org") is not None
    web.clock.now += timedelta(hours=47)
    sign_up(web.client, "other@example.org")  # any sign-up prunes; the link still holds
    with web.store.connect() as conn:
        assert subs.get_by_email(conn, "never@example.org") is not None
    web.clock.now += timedelta(hours=2)  # 49 h: the 48 h link has expired
    sign_up(web.client, "third@example.org")
    with web.store.connect() as conn:
        assert subs.get_by_email(conn, "never@example.org") is None
        assert subs.get_by_email(conn, "other@example.org") is not None  # its link holds
    web.clock.now += timedelta(hours=48)
    with TestClient(create_app(web.settings, web.store, secret=SECRET, clock=web.clock)):
        pass  # a server start prunes too, with no sign-up coming in
    with web.store.connect() as conn:
        assert subs.get_by_email(conn, "other@example.org") is None


def test_an_address_with_undecodable_bytes_is_refused_and_nothing_is_stored(
    web: Web, smtp_sink: Any
) -> None:
    csrf = csrf_of(web.client.get("/subscribe").text)
    body = b"csrf_token=" + csrf.encode() + b"&email=%ff%fe%40example.org"
    response = web.client.post(
        "/subscribe",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert "not UTF-8" in response.text
    with web.store.connect() as conn:
        assert list(subs.list_subscribers(conn)) == []
    assert smtp_sink.received == []
