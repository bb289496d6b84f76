"""Pages reached through a subscriber's signed link: unsubscribe (RFC 8058) and preferences.

``POST /unsubscribe/<token>`` with ``List-Unsubscribe=One-Click`` is what mailbox providers send
when the reader clicks their "Unsubscribe" button: it needs no cookie and no CSRF token (the
signed token is the authority). ``GET`` only shows a button, because mail scanners fetch links.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from digest.models import SubscriberStatus
from digest.store import subscribers as subs
from digest.web.app import Web
from digest.web.i18n import LANGUAGES, Translator
from digest.web.signup import Choices, read_choices, topic_options

log = logging.getLogger(__name__)

ONE_CLICK = ("List-Unsubscribe", "One-Click")


async def unsubscribe_page(request: Request) -> Response:
    web: Web = request.app.state.web
    token = request.path_params["token"]
    record, _ = await run_in_threadpool(web.subscriber_from_token, token, "unsubscribe")
    lang, _ = web.language(request, record.language)
    t = Translator(lang)
    if record.status is SubscriberStatus.UNSUBSCRIBED:
        return web.message(
            request,
            t("unsubscribed_title"),
            t("already_unsubscribed", email=record.email, title=web.settings.digest.title),
            language=lang,
        )
    return web.page(
        request,
        "unsubscribe.html.j2",
        language=lang,
        private=True,
        email=record.email,
        action=f"/unsubscribe/{token}",
        preferences_href=web.token_url(request, "preferences", record.token_key, "/preferences"),
    )


async def unsubscribe(request: Request) -> Response:
    web: Web = request.app.state.web
    token = request.path_params["token"]
    record, _ = await run_in_threadpool(web.subscriber_from_token, token, "unsubscribe")
    form_data = await request.form()
    one_click = form_data.get(ONE_CLICK[0]) == ONE_CLICK[1]
    if not one_click:
        # Our own button: a browser form, so it must carry the CSRF token.
        await web.require_csrf(request, form_data)

    def withdraw() -> None:
        with web.store.begin() as conn:
            subs.unsubscribe(conn, record.id, web.clock())

    await run_in_threadpool(withdraw)
    log.info("unsubscribed", extra={"subscriber": record.id, "one_click": one_click})
    lang, _ = web.language(request, record.language)
    t = Translator(lang)
    return web.message(
        request,
        t("unsubscribed_title"),
        t("unsubscribed", email=record.email, title=web.settings.digest.title),
        kind="ok",
        language=lang,
    )


def _preferences_page(
    web: Web,
    request: Request,
    token: str,
    record: subs.SubscriberRecord,
    lang: str,
    *,
    choices: Choices | None = None,
    saved: bool = False,
    error: str | None = None,
    status: int = 200,
) -> Response:
    current = choices or Choices(record.topics, record.language or web.settings.digest.language)
    return web.page(
        request,
        "preferences.html.j2",
        status=status,
        language=lang,
        private=True,
        email=record.email,
        action=f"/preferences/{token}",
        topics=topic_options(web, lang),
        chosen_topics=current.topics,
        languages=LANGUAGES,
        chosen_language=current.language,
        saved=saved,
        error=error,
        unsubscribe_href=web.token_url(request, "unsubscribe", record.token_key, "/unsubscribe"),
    )


async def preferences_page(request: Request) -> Response:
    web: Web = request.app.state.web
    token = request.path_params["token"]
    record, _ = await run_in_threadpool(web.subscriber_from_token, token, "preferences")
    lang, _ = web.language(request, record.language)
    return _preferences_page(web, request, token, record, lang)


async def preferences(request: Request) -> Response:
    web: Web = request.app.state.web
    token = request.path_params["token"]
    record, _ = await run_in_threadpool(web.subscriber_from_token, token, "preferences")
    form_data = await request.form()
    await web.require_csrf(request, form_data)
    lang, _ = web.language(request, record.language)
    try:
        choices = read_choices(web, form_data, Translator(lang))
    except ValueError as exc:
        return _preferences_page(web, request, token, record, lang, error=str(exc), status=400)

    def save() -> subs.SubscriberRecord:
        with web.store.begin() as conn:
            subs.update_preferences(
                conn, record.id, topics=list(choices.topics), language=choices.language
            )
            updated = subs.get_by_id(conn, record.id)
        assert updated is not None
        return updated

    updated = await run_in_threadpool(save)
    # The page answers in the language just chosen, unless the URL asks for another.
    lang, _ = web.language(request, updated.language)
    return _preferences_page(web, request, token, updated, lang, saved=True)
