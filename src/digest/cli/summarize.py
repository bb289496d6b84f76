"""digest summarize: show the cleaned text and summary of one article (a URL, or a file of
plain text or HTML), for editors checking how a case is handled."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from digest import config
from digest.cli.app import STATE, app, out
from digest.errors import DigestError, UsageError

if TYPE_CHECKING:
    from digest.summarize import Summarizer

# The summarizers and the full-text fetcher (trafilatura: slow to import) are imported inside
# the functions below, so that the other commands start without them.


def _settings() -> config.Settings | None:
    """The [summary] settings when a config file exists; the command works without one."""
    if STATE.config_path is None and not config.config_path(None).exists():
        return None
    return STATE.settings()


def _summarizer(settings: config.Settings | None, engine: str | None) -> Summarizer:
    from digest.pipeline.wiring import make_summarizer

    return make_summarizer(settings, engine=engine)


def _read_file(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", "replace")  # old pages and exports: repaired by ftfy later


def _fetch(url: str, allow_private: bool, timeout: float) -> str:
    from digest.summarize.fulltext import FullTextRequest, fetch_full_texts

    result = asyncio.run(
        fetch_full_texts([FullTextRequest(url, allow_private=allow_private)], timeout=timeout)
    )[url]
    if isinstance(result, DigestError):
        raise result
    return result


@app.command(
    "summarize",
    epilog=(
        "Example: digest summarize --file article.html --lang fr --json\n\n"
        "Example: digest summarize https://www.example.org/news/cloud-act"
    ),
)
@click.argument("url", required=False)
@click.option(
    "--file",
    "-f",
    "file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A saved article: plain text or HTML.",
)
@click.option("--lang", type=click.Choice(["fr", "en"]), help="The article's declared language.")
@click.option("--title", default="", help="The article's title (never repeated in the summary).")
@click.option(
    "--engine",
    type=click.Choice(["extractive", "llm"]),
    help="Override [summary] engine (default: the config's, else extractive).",
)
@click.option(
    "--allow-private",
    is_flag=True,
    help="Allow a URL on a private or loopback address (a local test server, an intranet).",
)
@click.option("--timeout", type=float, default=15.0, show_default=True, help="URL fetch timeout.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
def summarize_command(
    url: str | None,
    file: Path | None,
    lang: str | None,
    title: str,
    engine: str | None,
    allow_private: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Print the cleaned text of one article and its summary.

    The URL's page is fetched with the same safety rules as the pipeline's full-text fetcher;
    a FILE may be plain text or HTML. --json prints {"language", "text", "summary", "engine"}.
    """
    if (url is None) == (file is None):
        raise UsageError("give either a URL or --file FILE (exactly one)")
    if url is not None:
        from digest.urls import url_problem

        problem = url_problem(url)
        if problem is not None:  # checked here, once: never an exception from the HTTP client
            raise UsageError(f"{url[:200]}: not a URL that can be fetched: {problem}")
    content = _read_file(file) if file is not None else _fetch(str(url), allow_private, timeout)
    summary = _summarizer(_settings(), engine).summarize(title, content, language=lang)
    if as_json:
        data = {
            "language": summary.language,
            "text": summary.source_text,
            "summary": summary.text,
            "engine": summary.engine,
        }
        click.echo(json.dumps(data, ensure_ascii=False))
        return
    out.print(f"language: {summary.language}    engine: {summary.engine}", markup=False)
    out.print("\n[bold]Summary[/bold]")
    out.print(summary.text or "(empty: no text left once the boilerplate is removed)", markup=False)
    out.print("\n[bold]Cleaned text[/bold]")
    out.print(summary.source_text or "(empty)", markup=False)
