"""The editor's desk at ``/desk``: sign-in for ``[review] editors`` by a one-time mailed link, then
the draft as the email will look, with drop / pin / edit summary per entry, the near misses and
the items new since the draft (add), the note, a test to oneself, and approval. No JavaScript.

The session is a random cookie (HttpOnly, SameSite=Strict, Secure on https, 12 hours) whose
SHA-256 is stored; every POST carries the CSRF token; every action is logged with the editor.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from http.cookies import SimpleCookie
from urllib.parse import urlencode

from sqlalchemy import delete, select
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from digest.errors import DigestError, ExpiredToken, InvalidToken, LockedError, UsageError
from digest.pipeline import desk as actions
from digest.pipeline.draft import DraftView, build_draft_exclusive, current
from digest.pipeline.editors import (
    check_sign_in,
    send_sign_in,
    use_sign_in,
)
from digest.pipeline.messages import render_cache
from digest.render import personalize
from digest.send import split_from
from digest.store import schema
from digest.store.items import as_utc, to_db
from digest.web.app import Refusal, Web
from digest.web.i18n import Translator

log = logging.getLogger(__name__)

SESSION_COOKIE = "digest_desk"
SESSION_TTL = timedelta(hours=12)
#: At most one sign-in link per editor in this long (the form cannot flood an inbox).
LINK_INTERVAL = timedelta(minutes=1)
#: The email preview is a document of its own: inline styles (as mail has), still no script,
#: framed only by the desk itself.
PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data: https:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox"
)


def _enabled(web: Web) -> None:
    if not web.settings.review.editors:
        raise Refusal(404, "not_found")  # no editors configured: the desk does not exist


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("ascii", "replace")).hexdigest()


def _session_value(request: Request) -> str | None:
    raw = request.headers.get("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a garbled Cookie header is just "no session"
        return None
    morsel = jar.get(SESSION_COOKIE)
    return morsel.value if morsel is not None and 20 <= len(morsel.value) <= 100 else None


def _editor(web: Web, request: Request) -> str | None:
    """The signed-in editor, or None (no cookie, expired, or no longer an editor)."""
    value = _session_value(request)
    if value is None:
        return None
    s = schema.desk_sessions.c
    with web.store.connect() as conn:
        row = conn.execute(select(s.editor, s.expires).where(s.id_hash == _hash(value))).first()
    if row is None or as_utc(row.expires) <= web.clock():
        return None
    editor = str(row.editor)
    return editor if web.settings.review.is_editor(editor) else None


def _cookie(web: Web, value: str, max_age: int) -> str:
    https = bool((web.settings.digest.base_url or "").startswith("https://"))
    attrs = f"Path=/desk; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    return f"{SESSION_COOKIE}={value}; {attrs}" + ("; Secure" if https else "")


def _back(done: str | None = None, lang: str | None = None) -> RedirectResponse:
    query = {k: v for k, v in (("done", done), ("lang", lang)) if v}
    return RedirectResponse("/desk" + (f"?{urlencode(query)}" if query else ""), status_code=303)


# --------------------------------------------------------------------------- sign-in


async def desk_page(request: Request) -> Response:
    web: Web = request.app.state.web
    _enabled(web)
    editor = await run_in_threadpool(_editor, web, request)
    if editor is None:
        return web.page(request, "desk_login.html.j2", private=True, sent=False)
    view = await run_in_threadpool(current, web.settings, web.store)
    lang, _ = web.language(request)
    t = Translator(lang)
    done = request.query_params.get("done")
    return web.page(
        request,
        "desk.html.j2",
        private=True,
        editor=editor,
        view=view,
        entries=view.entry_list() if view else [],
        edited={e.item_id for e in view.entries if e.summary is not None} if view else set(),
        added={e.item_id for e in view.entries if e.origin == "editor"} if view else set(),
        topic_titles={
            tid: top.titles.get(lang, top.title) for tid, top in web.settings.topics.items()
        },
        done=t(f"desk_done_{done}") if done in _DONE else None,
        lang_query=f"?lang={lang}" if request.query_params.get("lang") else "",
    )


_DONE = ("dropped", "pinned", "added", "summary", "note", "test", "approved", "built")


async def request_link(request: Request) -> Response:
    """Mail a one-time link to an editor; the page says the same whoever asks (no enumeration)."""
    web: Web = request.app.state.web
    _enabled(web)
    form = await request.form()
    await web.require_csrf(request, form)
    address = str(form.get("email") or "").strip().lower()
    task = None
    if web.settings.review.is_editor(address):
        now = web.clock()
        if await run_in_threadpool(_may_mail, web, address, now):
            task = BackgroundTask(_mail_link, web, address, web.root_url(request), now)
        log.info("desk: sign-in link asked for", extra={"editor": address})
    response = web.page(request, "desk_login.html.j2", private=True, sent=True)
    response.background = task
    return response


def _may_mail(web: Web, editor: str, now: datetime) -> bool:
    t = schema.desk_logins.c
    with web.store.connect() as conn:
        last = conn.execute(
            select(t.created).where(t.editor == editor).order_by(t.created.desc()).limit(1)
        ).scalar()
    return last is None or as_utc(last) <= now - LINK_INTERVAL


def _mail_link(web: Web, editor: str, root: str, now: datetime) -> None:
    try:
        send_sign_in(web.settings, web.store, web.secret, editor, root_url=root, now=now)
    except DigestError as exc:
        log.error("desk: sign-in link not sent: %s", exc, extra={"editor": editor})


def _check_link(web: Web, token: str) -> str:
    try:
        return check_sign_in(web.store, web.secret, token, now=web.clock())
    except ExpiredToken:
        raise Refusal(410, "desk_link_expired") from None
    except InvalidToken:
        raise Refusal(400, "invalid_link") from None
    except LookupError:
        raise Refusal(410, "desk_link_used") from None


async def link_page(request: Request) -> Response:
    """A button, not a sign-in: mail scanners open links, and must not use them up."""
    web: Web = request.app.state.web
    _enabled(web)
    token = request.path_params["token"]
    editor = await run_in_threadpool(_check_link, web, token)
    return web.page(
        request, "desk_confirm.html.j2", private=True, editor=editor, action=f"/desk/login/{token}"
    )


async def sign_in(request: Request) -> Response:
    web: Web = request.app.state.web
    _enabled(web)
    token = request.path_params["token"]
    await run_in_threadpool(_check_link, web, token)
    form = await request.form()
    await web.require_csrf(request, form)

    def start() -> tuple[str, str]:
        now = web.clock()
        try:
            editor = use_sign_in(web.store, web.secret, token, now=now)
        except (InvalidToken, ExpiredToken, LookupError):
            raise Refusal(410, "desk_link_used") from None
        if not web.settings.review.is_editor(editor):
            raise Refusal(403, "desk_not_editor")
        value = secrets.token_urlsafe(32)
        s = schema.desk_sessions
        with web.store.begin() as conn:
            conn.execute(delete(s).where(s.c.expires < to_db(now)))
            conn.execute(
                s.insert().values(
                    id_hash=_hash(value),
                    editor=editor,
                    created=to_db(now),
                    expires=to_db(now + SESSION_TTL),
                )
            )
        return editor, value

    editor, value = await run_in_threadpool(start)
    log.info("desk: signed in", extra={"editor": editor})
    response = _back()
    response.headers.append("Set-Cookie", _cookie(web, value, int(SESSION_TTL.total_seconds())))
    return response


async def sign_out(request: Request) -> Response:
    web: Web = request.app.state.web
    _enabled(web)
    form = await request.form()
    await web.require_csrf(request, form)
    value = _session_value(request)
    if value is not None:

        def end() -> None:
            with web.store.begin() as conn:
                s = schema.desk_sessions
                conn.execute(delete(s).where(s.c.id_hash == _hash(value)))

        await run_in_threadpool(end)
    response = _back()
    response.headers.append("Set-Cookie", _cookie(web, "", 0))
    return response


# --------------------------------------------------------------------------- the draft


async def _acting(request: Request) -> tuple[Web, str, FormData]:
    """The signed-in editor and the checked form of a desk POST (303 to /desk when signed out)."""
    web: Web = request.app.state.web
    _enabled(web)
    form = await request.form()
    await web.require_csrf(request, form)
    editor = await run_in_threadpool(_editor, web, request)
    if editor is None:
        raise Refusal(403, "desk_signed_out")
    return web, editor, form


def _item(form: FormData) -> int:
    value = str(form.get("item") or "")
    if not value.isdigit():
        raise Refusal(400, "desk_bad_form")
    return int(value)


async def _run(web: Web, request: Request, done: str, act: Callable[[], None]) -> Response:
    """Run one desk action; a refusal (not in the draft, not an editor...) is shown as a page."""
    try:
        await run_in_threadpool(act)
    except UsageError as exc:
        lang, _ = web.language(request)
        return web.message(
            request, Translator(lang)("error_title"), str(exc), status=409, kind="error"
        )
    return _back(done, request.query_params.get("lang"))


async def build(request: Request) -> Response:
    web, editor, _ = await _acting(request)

    def act() -> None:
        try:
            view, _ = build_draft_exclusive(web.settings, web.store, now=web.clock())
        except LockedError as exc:  # the daemon runs: it builds the draft on its schedule
            raise UsageError(str(exc)) from None
        if view is None:
            raise UsageError("no new items: nothing to draft")

    log.info("desk: %s built the draft", editor, extra={"editor": editor})
    return await _run(web, request, "built", act)


async def drop(request: Request) -> Response:
    web, editor, form = await _acting(request)

    def act() -> None:
        actions.drop(web.settings, web.store, _item(form), editor=editor, now=web.clock())

    return await _run(web, request, "dropped", act)


async def pin(request: Request) -> Response:
    web, editor, form = await _acting(request)

    def act() -> None:
        actions.pin(web.settings, web.store, _item(form), editor=editor, now=web.clock())

    return await _run(web, request, "pinned", act)


async def add(request: Request) -> Response:
    web, editor, form = await _acting(request)
    topic = str(form.get("topic") or "")

    def act() -> None:
        actions.add(
            web.settings, web.store, _item(form), topic=topic, editor=editor, now=web.clock()
        )

    return await _run(web, request, "added", act)


async def summary(request: Request) -> Response:
    web, editor, form = await _acting(request)
    text = str(form.get("summary") or "")

    def act() -> None:
        actions.set_summary(
            web.settings, web.store, _item(form), text, editor=editor, now=web.clock()
        )

    return await _run(web, request, "summary", act)


async def note(request: Request) -> Response:
    web, editor, form = await _acting(request)
    text = str(form.get("note") or "")

    def act() -> None:
        actions.set_note(web.settings, web.store, text, editor=editor, now=web.clock())

    return await _run(web, request, "note", act)


async def test(request: Request) -> Response:
    """ "Send a test to me": to the signed-in editor's own address, and nobody else."""
    web, editor, _ = await _acting(request)

    def act() -> None:
        report = actions.send_test(
            web.settings, web.store, [editor], now=web.clock(), secret=web.secret
        )
        failed = [error for _, error in report if error]
        if failed:
            raise UsageError(f"the test to {editor} was not sent: {failed[0]}")

    log.info("desk: %s sent a test to themself", editor, extra={"editor": editor})
    return await _run(web, request, "test", act)


async def approve(request: Request) -> Response:
    web, editor, _ = await _acting(request)

    def act() -> None:
        actions.approve(web.settings, web.store, editor=editor, now=web.clock())

    return await _run(web, request, "approved", act)


async def preview(request: Request) -> Response:
    """The draft exactly as the email shows it (personalised for a stand-in reader)."""
    web: Web = request.app.state.web
    _enabled(web)
    if await run_in_threadpool(_editor, web, request) is None:
        raise Refusal(403, "desk_signed_out")
    view = await run_in_threadpool(current, web.settings, web.store)
    if view is None or not view.entries:
        raise Refusal(404, "not_found")
    html = await run_in_threadpool(_email_html, web, view)
    headers = {
        "Content-Security-Policy": PREVIEW_CSP,
        "X-Frame-Options": "SAMEORIGIN",
        "Cache-Control": "no-store",
    }
    return HTMLResponse(html, headers=headers)


def _email_html(web: Web, view: DraftView) -> str:
    """The draft as a reader's email shows it (brand, templates), for a stand-in reader."""
    rendered = render_cache(web.settings).get(view.content)
    sender = split_from(web.settings.delivery.from_)[1]
    html, _ = personalize(
        rendered,
        name=None,
        unsubscribe_url=f"mailto:{sender}?subject=unsubscribe",
        preferences_url=None,
    )
    return html
