"""The public archive: the list of issues, one issue as a web page, and the Atom feed."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from digest.errors import UsageError
from digest.render import page_style_csp_source, render_page
from digest.store import issues as issue_store
from digest.web.app import Refusal, Web
from digest.web.feed import FeedEntry, atom_feed
from digest.web.i18n import Translator
from digest.web.security import issue_csp

#: Issue numbers are INTEGER columns (32 bits on PostgreSQL): anything larger names no issue.
MAX_ISSUE_NUMBER = 2**31 - 1


def issue_number(segment: str) -> int | None:
    """The issue number a URL segment names, or None (not ASCII digits, too long, too large)."""
    if not (0 < len(segment) <= 10 and segment.isascii() and segment.isdigit()):
        return None
    number = int(segment)
    return number if 0 < number <= MAX_ISSUE_NUMBER else None


async def index(request: Request) -> Response:
    web: Web = request.app.state.web
    lang, _ = web.language(request)
    t = Translator(lang)
    tz = web.settings.digest.timezone

    def load() -> list[issue_store.StoredIssue]:
        with web.store.connect() as conn:
            return issue_store.list_issues(conn)

    rows = [
        {
            "number": issue.number,
            "title": issue.title,
            "created": issue.created,
            "date": t.date(issue.created, tz),
            "count": t.plural("items_count", issue.content.item_count),
        }
        for issue in await run_in_threadpool(load)
    ]
    return web.page(request, "index.html.j2", issues=rows)


async def issue(request: Request) -> Response:
    """The issue as the email shows it, without personal bits (rendered by ``render``)."""
    web: Web = request.app.state.web
    number = issue_number(request.path_params["number"])
    if number is None:
        raise Refusal(404, "not_found")
    explicit = request.query_params.get("lang")

    def load() -> str:
        with web.store.connect() as conn:
            try:
                stored = issue_store.load_issue(conn, number)
            except UsageError:
                raise Refusal(404, "not_found") from None
        # The page is in the issue's own language unless the reader asked for another.
        return render_page(
            stored.content,
            language=explicit if explicit in ("en", "fr") else None,
            brand=web.settings.brand.to_model(),
            templates=web.settings.render.templates,
        )

    html = await run_in_threadpool(load)
    # The page carries its stylesheet inline; allow exactly that one, by hash.
    csp = issue_csp(page_style_csp_source(web.settings.render.templates))
    return HTMLResponse(html, headers={"Content-Security-Policy": csp})


async def feed(request: Request) -> Response:
    web: Web = request.app.state.web

    def load() -> list[FeedEntry]:
        with web.store.connect() as conn:
            stored = issue_store.list_issues(conn, limit=50)
        return [
            FeedEntry(
                number=s.number,
                title=s.subject or s.title,
                updated=s.created,
                # The editor's note first (its Markdown source reads as text), then the stories.
                summary="\n\n".join(
                    part
                    for part in (
                        s.content.note.strip(),
                        "\n".join(e.title for sec in s.content.sections for e in sec.entries),
                    )
                    if part
                ),
            )
            for s in stored
        ]

    body = atom_feed(
        title=web.settings.digest.title,
        root_url=web.root_url(request),
        entries=await run_in_threadpool(load),
        language=web.settings.digest.language,
    )
    return Response(body, media_type="application/atom+xml; charset=utf-8")
