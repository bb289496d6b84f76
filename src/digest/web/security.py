"""Safe-by-default HTTP: strict security headers on every response, and CSRF protection.

CSRF uses the *signed double-submit cookie* pattern (OWASP): a random value lives in an HttpOnly
``SameSite=Lax`` cookie, and every form carries ``HMAC(secret, cookie)``. A forged cross-site form
can neither read the cookie nor compute its signature, and nothing is kept server-side.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from http.cookies import SimpleCookie

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_COOKIE = "digest_csrf"
CSRF_FIELD = "csrf_token"
_STATE_KEY = "csrf_cookie"
_NEW_KEY = "csrf_cookie_new"
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{20,100}")

#: No script may run at all; forms post only to us; nobody may frame us.
CSP = (
    "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'; img-src 'self' data:; style-src 'self'"
)


def issue_csp(style_source: str) -> str:
    """The CSP of an archived issue page: the same, plus the hash of its one <style> element."""
    return CSP.replace("style-src 'self'", f"style-src 'self' {style_source}")


class SecurityHeaders:
    """ASGI middleware: adds the security headers to every response that lacks them."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CSP)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                # Links carry tokens: never let them leak to another site through Referer.
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
                headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
                headers.setdefault(
                    "Permissions-Policy",
                    "camera=(), microphone=(), geolocation=(), interest-cohort=()",
                )
                if self.https:
                    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
            await send(message)

        await self.app(scope, receive, send_with_headers)


class CSRFCookie:
    """ASGI middleware: makes sure every visitor has a CSRF cookie (set on first response)."""

    def __init__(self, app: ASGIApp, *, secure: bool) -> None:
        self.app = app
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = _cookie_from_scope(scope)
        state = scope.setdefault("state", {})
        if value is None:
            value = secrets.token_urlsafe(32)
            state[_NEW_KEY] = True
        state[_STATE_KEY] = value

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and state.get(_NEW_KEY):
                attrs = "Path=/; HttpOnly; SameSite=Lax"
                if self.secure:
                    attrs += "; Secure"
                MutableHeaders(scope=message).append(
                    "Set-Cookie", f"{CSRF_COOKIE}={value}; {attrs}"
                )
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _cookie_from_scope(scope: Scope) -> str | None:
    for name, raw in scope.get("headers", []):
        if name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(raw.decode("latin-1"))
            except Exception:  # a garbled Cookie header is just "no cookie"
                continue
            morsel = jar.get(CSRF_COOKIE)
            # Only values we could have set (token_urlsafe): anything else is "no cookie".
            if morsel is not None and _COOKIE_VALUE.fullmatch(morsel.value):
                return morsel.value
    return None


def csrf_token(secret: bytes, cookie_value: str) -> str:
    """The form field value that goes with this visitor's cookie."""
    mac = hmac.new(secret, b"digest-csrf\x00" + cookie_value.encode("ascii"), hashlib.sha256)
    return mac.hexdigest()


def csrf_valid(secret: bytes, cookie_value: str | None, submitted: str | None) -> bool:
    """True when the submitted field is the signature of the cookie the browser sent back."""
    if not cookie_value or not submitted:
        return False
    # Bytes: ``compare_digest`` raises TypeError on a str that is not ASCII (a forged form).
    expected = csrf_token(secret, cookie_value).encode("ascii")
    return hmac.compare_digest(expected, submitted.encode("utf-8", "replace"))


def request_cookie(scope: Scope) -> tuple[str, bool]:
    """This request's CSRF cookie value and whether the browser actually sent it."""
    state = scope.get("state", {})
    return str(state.get(_STATE_KEY, "")), not state.get(_NEW_KEY, False)
