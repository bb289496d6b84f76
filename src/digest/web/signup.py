"""Sign-up with double opt-in: the form, the confirmation email, and the confirmation link.

The answer to a sign-up never depends on whether the address is known (no enumeration): the
email goes out in a background task after the response, at most once per address per hour.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from digest.errors import DigestError, UsageError
from digest.models import SubscriberStatus
from digest.store import signups
from digest.store import subscribers as subs
from digest.store.items import as_utc
from digest.tokens import keyed_hash, make_token
from digest.web.app import Refusal, Web
from digest.web.i18n import LANGUAGES, Translator
from digest.web.mail import send_confirmation

log = logging.getLogger(__name__)

#: "At most one new confirmation per address per hour", and the per-IP window.
CONFIRM_INTERVAL = timedelta(hours=1)
IP_WINDOW = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Choices:
    """Topics and language as submitted (validated against the configuration)."""

    topics: tuple[str, ...]
    language: str


def topic_options(web: Web, lang: str) -> list[dict[str, str]]:
    """The configured topics with their title in ``lang`` when the editors gave one."""
    return [
        {"id": tid, "title": topic.titles.get(lang, topic.title)}
        for tid, topic in web.settings.topics.items()
    ]


def read_choices(web: Web, form: FormData, t: Translator) -> Choices:
    """Topics and language from a form; ValueError with a translated message when invalid."""
    topics = tuple(dict.fromkeys(str(v) for v in form.getlist("topics")))
    for topic in topics:
        if topic not in web.settings.topics:
            raise ValueError(t("unknown_topic", topic=topic))
    language = str(form.get("language") or web.settings.digest.language)
    if language not in LANGUAGES:
        raise ValueError(t("unknown_language", language=language))
    # Every topic ticked is the same as none: "all topics", which also covers future ones.
    if set(topics) == set(web.settings.topics):
        topics = ()
    return Choices(topics, language)


def _form_page(
    web: Web,
    request: Request,
    lang: str,
    *,
    email: str = "",
    choices: Choices | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    return web.page(
        request,
        "subscribe.html.j2",
        status=status,
        email=email,
        error=error,
        topics=topic_options(web, lang),
        chosen_topics=choices.topics if choices else (),
        languages=LANGUAGES,
        chosen_language=choices.language if choices else lang,
    )


async def form(request: Request) -> Response:
    web: Web = request.app.state.web
    lang, _ = web.language(request)
    return _form_page(web, request, lang)


def _client_ip(request: Request) -> str:
    # Behind a reverse proxy uvicorn's proxy-headers support puts the real client here.
    return request.client.host if request.client else "unknown"


def rate_key(host: str) -> str:
    """What the per-network sign-up limit counts: an IPv4 address, or the /64 an IPv6 address
    lies in (one subscriber line gets a whole /64: per address, each would have its own quota).
    """
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


async def submit(request: Request) -> Response:
    web: Web = request.app.state.web
    lang, _ = web.language(request)
    t = Translator(lang)
    form_data = await request.form()
    await web.require_csrf(request, form_data)

    address = str(form_data.get("email") or "").strip()
    try:
        choices = read_choices(web, form_data, t)
    except ValueError as exc:
        return _form_page(web, request, lang, email=address, error=str(exc), status=400)
    try:
        address = subs.normalize_email(address)
    except UsageError as exc:
        reason = str(exc).rsplit(": ", 1)[-1]
        return _form_page(
            web,
            request,
            lang,
            email=address,
            choices=choices,
            error=t("invalid_email", reason=reason),
            status=400,
        )

    now = web.clock()
    ip_hash = keyed_hash(web.secret, rate_key(_client_ip(request)), purpose="signup-ip")
    allowed, claim = await run_in_threadpool(_register, web, ip_hash, address, choices, now)
    if not allowed:
        log.info("sign-up refused: per-IP limit reached")
        raise Refusal(429, "rate_limited", language=lang)

    task = None
    if claim is not None:
        record, stamp = claim
        task = BackgroundTask(_send_confirmation, web, request, record, stamp, choices.language)
    response = web.message(
        request,
        t("check_inbox_title"),
        t("check_inbox", email=address, ttl=_ttl_words(web, t)),
        language=lang,
    )
    response.background = task
    return response


def _ttl_words(web: Web, t: Translator) -> str:
    hours = max(1, round(web.confirm_ttl.total_seconds() / 3600))
    return t.plural("hours", hours)


def _register(
    web: Web, ip_hash: str, address: str, choices: Choices, now: datetime
) -> tuple[bool, tuple[subs.SubscriberRecord, datetime] | None]:
    """Rate-limit, then record the sign-up; returns (allowed, (record, stamp) to email)."""
    limit = web.settings.web.signups_per_ip_per_hour
    with web.store.begin() as conn:
        signups.prune_attempts(conn, now - IP_WINDOW)
        # Every sign-up (and the server's start) forgets the ones whose link has expired.
        signups.prune_pending(conn, now - web.confirm_ttl)
        if not signups.attempt_allowed(conn, ip_hash, now, limit=limit, window=IP_WINDOW):
            return False, None
    with web.store.begin() as conn:
        record = subs.get_by_email(conn, address)
        if record is None:
            record = subs.add_subscriber(
                conn,
                address,
                topics=choices.topics,
                language=choices.language,
                status=SubscriberStatus.PENDING,
                source="signup",
                now=now,
            )
        elif record.status in (
            SubscriberStatus.PENDING,
            SubscriberStatus.UNSUBSCRIBED,
            SubscriberStatus.BOUNCED,
        ):
            # Not receiving anything: the latest form wins (applied only once confirmed). A
            # bounced reader who confirms has shown their address works again.
            subs.update_preferences(
                conn, record.id, topics=list(choices.topics), language=choices.language
            )
        else:
            # Active: nothing to confirm, and the page must not say so.
            return True, None
        stamp = signups.claim_confirmation(conn, record.id, now, interval=CONFIRM_INTERVAL)
    return True, (record, stamp) if stamp is not None else None


def confirm_key(record: subs.SubscriberRecord, stamp: datetime) -> str:
    """The key a confirmation link carries: the subscriber's random key and when it was sent.

    Binding the link to the send time makes it single-use: a confirmation after that time, or
    a newer email, retires it.
    """
    return f"{record.token_key}_{int(stamp.timestamp())}"


def _send_confirmation(
    web: Web, request: Request, record: subs.SubscriberRecord, stamp: datetime, lang: str
) -> None:
    """Runs after the response (in a worker thread): build the link, send, or release the claim."""
    token = make_token(web.secret, "confirm", confirm_key(record, stamp), stamp + web.confirm_ttl)
    link = web.absolute(request, f"/confirm/{token}")
    try:
        send_confirmation(
            web.settings, web.env, address=record.email, link=link, language=lang, now=web.clock()
        )
    except DigestError as exc:
        log.error("%s", exc)
        # Let the person try again at once instead of waiting out the hour.
        with web.store.begin() as conn:
            signups.release_confirmation(conn, record.id, stamp)


def _check_confirmation(web: Web, token: str) -> tuple[subs.SubscriberRecord, str]:
    record, key = web.subscriber_from_token(token, "confirm")
    _, _, sent = key.partition("_")
    with web.store.connect() as conn:
        last_sent = signups.confirm_sent_at(conn, record.id)
    confirmed = as_utc(record.confirmed_at) if record.confirmed_at else None
    if (
        not sent.isdigit()
        or last_sent is None
        or int(last_sent.timestamp()) != int(sent)
        or record.status is SubscriberStatus.ACTIVE
        or (confirmed is not None and last_sent is not None and confirmed >= last_sent)
    ):
        raise Refusal(410, "used_link", language=record.language)
    return record, key


async def confirm_page(request: Request) -> Response:
    """Show a button: mail scanners that open links must not confirm on someone's behalf."""
    web: Web = request.app.state.web
    token = request.path_params["token"]
    record, _ = await run_in_threadpool(_check_confirmation, web, token)
    lang, _ = web.language(request, record.language)
    return web.page(
        request,
        "confirm.html.j2",
        language=lang,
        private=True,
        email=record.email,
        action=f"/confirm/{token}",
    )


async def confirm(request: Request) -> Response:
    web: Web = request.app.state.web
    token = request.path_params["token"]
    # The link is judged first: an expired or used one says so even without a form token.
    await run_in_threadpool(_check_confirmation, web, token)
    form_data = await request.form()
    await web.require_csrf(request, form_data)

    def activate() -> subs.SubscriberRecord:
        record, _ = _check_confirmation(web, token)
        with web.store.begin() as conn:
            subs.set_status(conn, record.id, SubscriberStatus.ACTIVE, web.clock())
            # Signing up again is new consent: drop any erasure marker left by a past removal.
            subs.forget_erasure(conn, web.secret, record.email, previous=web.previous_secret)
        log.info("subscription confirmed", extra={"subscriber": record.id})
        return record

    record = await run_in_threadpool(activate)
    lang, _ = web.language(request, record.language)
    t = Translator(lang)
    return web.message(
        request,
        t("confirmed_title"),
        t("confirmed", email=record.email, title=web.settings.digest.title),
        kind="ok",
        language=lang,
        link={
            "href": web.token_url(request, "preferences", record.token_key, "/preferences"),
            "text": t("manage_preferences"),
        },
    )
