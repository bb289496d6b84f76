"""The Starlette application: ``create_app(settings, store)`` wires routes, middleware and pages.

Shared plumbing lives here (``Web``: settings, store, secret, clock, templates, language per
request, refusal pages); the routes are in ``archive``, ``signup`` and ``account``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digest import config
from digest.errors import DigestError, ExpiredToken, InvalidToken
from digest.store import Store
from digest.store import subscribers as subs
from digest.tokens import make_token, previous_secret_from_env, read_token, secret_from_env
from digest.web.i18n import LANGUAGES, Translator, choose_language
from digest.web.security import (
    CSRF_FIELD,
    CSRFCookie,
    SecurityHeaders,
    csrf_token,
    csrf_valid,
    request_cookie,
)

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent


class Refusal(Exception):
    """A request we decline with a clear page: HTTP ``status`` and a message key of ``i18n``."""

    def __init__(self, status: int, key: str, *, language: str | None = None) -> None:
        super().__init__(key)
        self.status = status
        self.key = key
        self.language = language


@dataclass
class Web:
    """Everything a route needs; one per application (``request.app.state.web``)."""

    settings: config.Settings
    store: Store
    secret: bytes
    clock: Callable[[], datetime]
    confirm_ttl: timedelta
    env: jinja2.Environment = field(repr=False)
    #: ``$DIGEST_SECRET_PREVIOUS``: verifies links and finds erased addresses, signs nothing.
    previous_secret: bytes | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ language and URLs

    def language(self, request: Request, preferred: str | None = None) -> tuple[str, bool]:
        """``?lang=`` wins; then the subscriber's own language; then Accept-Language."""
        query = request.query_params.get("lang")
        if query not in LANGUAGES and preferred in LANGUAGES:
            return str(preferred), False
        return choose_language(
            query, request.headers.get("accept-language"), self.settings.digest.language
        )

    def root_url(self, request: Request) -> str:
        """The public root: ``[digest] base_url``, else what the request came in on."""
        base = self.settings.digest.base_url
        return base if base else str(request.base_url).rstrip("/")

    def absolute(self, request: Request, path: str) -> str:
        return self.root_url(request) + path

    def token_url(self, request: Request, purpose: str, key: str, path: str) -> str:
        return self.absolute(request, f"{path}/{make_token(self.secret, purpose, key)}")

    # ------------------------------------------------------------------ pages

    def page(
        self,
        request: Request,
        template: str,
        *,
        status: int = 200,
        language: str | None = None,
        private: bool = False,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """Render ``template`` in the request's language with the shared context."""
        lang, explicit = (language, True) if language else self.language(request)
        other = "fr" if lang == "en" else "en"

        def url(path: str) -> str:
            # An explicit language choice follows the visitor from page to page.
            return f"{path}?{urlencode({'lang': lang})}" if explicit else path

        cookie, _sent = request_cookie(request.scope)
        body = self.env.get_template(template).render(
            lang=lang,
            other_lang=other,
            t=Translator(lang),
            url=url,
            switch_url=f"{local_path(request.url.path)}?{urlencode({'lang': other})}",
            site_title=self.settings.digest.title,
            csrf=csrf_token(self.secret, cookie),
            **context,
        )
        all_headers = {"Content-Language": lang, **(headers or {})}
        if private:
            # Pages reached through a personal token: never cached, never indexed.
            all_headers["Cache-Control"] = "no-store"
            all_headers["X-Robots-Tag"] = "noindex"
        return HTMLResponse(body, status_code=status, headers=all_headers)

    def message(
        self,
        request: Request,
        heading: str,
        text: str,
        *,
        status: int = 200,
        kind: str = "info",
        language: str | None = None,
        link: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> HTMLResponse:
        return self.page(
            request,
            "message.html.j2",
            status=status,
            language=language,
            private=True,
            headers=headers,
            heading=heading,
            text=text,
            kind=kind,
            link=link,
        )

    # ------------------------------------------------------------------ checks

    async def require_csrf(self, request: Request, form: Any) -> None:
        """Refuse (403) a form POST whose token is missing or does not match its cookie."""
        cookie, sent = request_cookie(request.scope)
        submitted = form.get(CSRF_FIELD)
        if (
            not sent
            or not isinstance(submitted, str)
            or not any(
                csrf_valid(key, cookie, submitted)
                for key in (self.secret, self.previous_secret)
                if key is not None
            )
        ):
            log.info("form refused: CSRF token missing or wrong", extra={"path": request.url.path})
            raise Refusal(403, "csrf_failed")

    def subscriber_from_token(self, token: str, purpose: str) -> tuple[subs.SubscriberRecord, str]:
        """The subscriber a signed link designates, and the key it carried.

        Tampered or foreign tokens -> 400; expired -> 410; a key nobody holds any more -> 410.
        """
        try:
            key = read_token(
                self.secret, token, purpose, self.clock(), previous=self.previous_secret
            )
        except ExpiredToken:
            raise Refusal(410, "expired_link") from None
        except InvalidToken:
            raise Refusal(400, "invalid_link") from None
        token_key = key.split("_", 1)[0]
        with self.store.connect() as conn:
            record = subs.get_by_token_key(conn, token_key)
        if record is None:
            raise Refusal(410, "gone_link")
        return record, key


def prune_expired_signups(web: Web) -> int:
    """Delete sign-ups never confirmed whose confirmation link has expired; returns how many."""
    from digest.store import signups

    with web.store.begin() as conn:
        pruned = signups.prune_pending(conn, web.clock() - web.confirm_ttl)
    if pruned:
        log.info("forgot %d sign-up(s) never confirmed", pruned)
    return pruned


def local_path(path: str) -> str:
    """``path`` as a link that stays on this site: ``//evil.example/x`` (or ``/\\evil``) would
    be read by a browser as another host, so leading slashes and backslashes collapse to one."""
    return "/" + path.lstrip("/\\")


def _refusal_page(request: Request, exc: Exception) -> Response:
    web: Web = request.app.state.web
    if isinstance(exc, Refusal):
        status, key, language = exc.status, exc.key, exc.language
    elif isinstance(exc, HTTPException):
        status, key, language = exc.status_code, "not_found", None
    elif isinstance(exc, DigestError):
        # Database busy or unreachable, mail relay misconfigured...: the operator's problem,
        # told in the log; the visitor gets a page instead of a bare 500.
        log.error("request failed: %s", exc, extra={"path": request.url.path})
        status, key, language = 503, "unavailable", None
    else:  # pragma: no cover - only the kinds above are registered
        raise exc
    lang = language or web.language(request)[0]
    t = Translator(lang)
    headers = {"429": {"Retry-After": "3600"}, "503": {"Retry-After": "120"}}.get(str(status))
    if isinstance(exc, HTTPException) and exc.status_code != 404:
        return Response(status_code=exc.status_code, headers=exc.headers)
    return web.message(
        request,
        t("error_title"),
        t(key),
        status=status,
        kind="error",
        language=lang,
        headers=headers,
    )


class ErrorPage:
    """ASGI middleware inside the security headers: an unexpected exception (a bug) becomes a
    500 page with every security header, logged once with its traceback, never a bare 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            log.exception("request failed", extra={"path": scope.get("path", "")})
            if started:  # too late for a page: the server closes the connection
                raise
            request = Request(scope)
            web: Web = request.app.state.web
            lang = web.language(request)[0]
            t = Translator(lang)
            page = web.message(
                request, t("error_title"), t("unavailable"), status=500, kind="error", language=lang
            )
            await page(scope, receive, send)


async def _favicon(_request: Request) -> Response:
    return FileResponse(
        HERE / "static" / "favicon.svg",
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400"},
    )


def _routes() -> list[BaseRoute]:
    from digest.web import account, archive, desk, signup

    return [
        Route("/desk", desk.desk_page, methods=["GET"]),
        Route("/desk/login", desk.request_link, methods=["POST"]),
        Route("/desk/login/{token}", desk.link_page, methods=["GET"]),
        Route("/desk/login/{token}", desk.sign_in, methods=["POST"]),
        Route("/desk/logout", desk.sign_out, methods=["POST"]),
        Route("/desk/preview", desk.preview, methods=["GET"]),
        Route("/desk/build", desk.build, methods=["POST"]),
        Route("/desk/drop", desk.drop, methods=["POST"]),
        Route("/desk/pin", desk.pin, methods=["POST"]),
        Route("/desk/add", desk.add, methods=["POST"]),
        Route("/desk/summary", desk.summary, methods=["POST"]),
        Route("/desk/note", desk.note, methods=["POST"]),
        Route("/desk/test", desk.test, methods=["POST"]),
        Route("/desk/approve", desk.approve, methods=["POST"]),
        Route("/", archive.index, methods=["GET"]),
        # A plain segment, checked by the route: ``{number:int}`` turns 5,000 digits or a number
        # beyond the column into an exception instead of a 404.
        Route("/issues/{number}", archive.issue, methods=["GET"]),
        Route("/feed.xml", archive.feed, methods=["GET"]),
        Route("/subscribe", signup.form, methods=["GET"]),
        Route("/subscribe", signup.submit, methods=["POST"]),
        Route("/confirm/{token}", signup.confirm_page, methods=["GET"]),
        Route("/confirm/{token}", signup.confirm, methods=["POST"]),
        Route("/unsubscribe/{token}", account.unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe/{token}", account.unsubscribe, methods=["POST"]),
        Route("/preferences/{token}", account.preferences_page, methods=["GET"]),
        Route("/preferences/{token}", account.preferences, methods=["POST"]),
        # Browsers ask for /favicon.ico on every page, the archived issue's included.
        Route("/favicon.ico", _favicon, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]


def create_app(
    settings: config.Settings,
    store: Store,
    *,
    secret: bytes | None = None,
    previous_secret: bytes | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Starlette:
    """The subscribers' web front for ``settings`` and ``store``.

    ``secret`` defaults to ``$DIGEST_SECRET`` (ConfigError when unset), ``previous_secret`` to
    ``$DIGEST_SECRET_PREVIOUS`` when ``secret`` is not given; ``clock`` lets tests move time
    forward to expire links.
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    web = Web(
        settings=settings,
        store=store,
        secret=secret if secret is not None else secret_from_env(),
        clock=clock or (lambda: datetime.now(UTC)),
        confirm_ttl=settings.web.confirm_ttl.delta,
        env=env,
        previous_secret=(
            previous_secret
            if previous_secret is not None or secret is not None
            else previous_secret_from_env()
        ),
    )
    base = settings.digest.base_url
    https = bool(base and base.startswith("https://"))
    if not base:
        log.warning(
            "[digest] base_url is not set: links in confirmation emails use the request's "
            "Host header; set it to the public https address (see docs/web.md)"
        )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # Sign-ups pruned at start too, not only when the next one comes in (see signup.py).
        await run_in_threadpool(prune_expired_signups, web)
        yield

    app = Starlette(
        lifespan=lifespan,
        routes=_routes(),
        middleware=[
            Middleware(SecurityHeaders, https=https),
            Middleware(CSRFCookie, secure=https),
            Middleware(ErrorPage),
        ],
        exception_handlers={
            Refusal: _refusal_page,
            HTTPException: _refusal_page,
            DigestError: _refusal_page,
        },
    )
    app.state.web = web
    return app
