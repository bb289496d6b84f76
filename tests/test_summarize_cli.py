"""``digest summarize`` through the real entry point: files (text or HTML), URLs on a local
server, --json, the config's [summary] settings, and one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from conftest import CLIResult, run_cli

TITLE = "A page is turning for the French sovereign cloud"


Runner = Callable[..., CLIResult]


@pytest.fixture
def run(workdir: Path, capsys: pytest.CaptureFixture[str]) -> Runner:
    def run(*args: str) -> CLIResult:
        return run_cli(capsys, *args)

    return run


def test_a_text_file_prints_the_summary_and_the_cleaned_text(
    run: Runner, workdir: Path, seed_path: Path
) -> None:
    result = run("summarize", "--file", str(seed_path), "--title", TITLE)
    assert result.code == 0, result.err
    assert "language: en" in result.out
    assert "engine: extractive" in result.out
    summary = result.out.split("Summary\n", 1)[1].split("\n\nCleaned text", 1)[0]
    assert summary.startswith("The Cloudwatt, Orange's online data hosting service")
    assert "FaLang" not in result.out
    assert "Read the article" not in result.out


def test_json_prints_exactly_one_object(run: Runner, workdir: Path) -> None:
    html = workdir / "article.html"
    html.write_text(
        "<p>La CNIL a publié mardi une recommandation sur les données de santé. Elle vise les "
        "administrations et leurs prestataires de cloud.</p><p>Lire la suite</p>",
        encoding="utf-8",
    )
    result = run("summarize", "--file", str(html), "--lang", "fr", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert set(data) == {"language", "text", "summary", "engine"}
    assert data["language"] == "fr"
    assert data["engine"] == "extractive"
    assert data["summary"].startswith("La CNIL a publié mardi")
    assert "Lire la suite" not in data["text"]


def test_a_url_is_fetched_when_private_addresses_are_allowed(
    run: Runner, httpserver: HTTPServer, seed: str
) -> None:
    page = "".join(f"<p>{line}</p>" for line in seed.splitlines())
    httpserver.expect_request("/a").respond_with_data(
        f"<html><body><article>{page}</article></body></html>", content_type="text/html"
    )
    url = httpserver.url_for("/a")
    refused = run("summarize", url)
    assert refused.code == 1
    assert "loopback" in refused.err
    assert refused.err.count("\n") == 1
    result = run("summarize", url, "--allow-private", "--json")
    assert result.code == 0, result.err
    assert "Cloudwatt" in json.loads(result.out)["summary"]


def test_the_configs_summary_budget_is_used(run: Runner, workdir: Path, seed_path: Path) -> None:
    cfg = workdir / "digest.toml"
    cfg.write_text("[summary]\nmax_words = 20\n", encoding="utf-8")
    result = run("--config", str(cfg), "summarize", "--file", str(seed_path), "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)["summary"]
    assert len(summary.split()) <= 20


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give either a URL or --file FILE"),
        (("https://example.org/a", "--file", "x.txt"), "exactly one"),
        (("--file", "missing.txt"), "missing.txt: cannot read"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run: Runner, args: tuple[str, ...], message: str) -> None:
    result = run("summarize", *args)
    assert result.code == 2
    assert message in result.err
    assert result.err.count("\n") == 1


def test_help_has_an_example(run: Runner) -> None:
    result = run("summarize", "--help")
    assert result.code == 0
    assert "Example: digest summarize" in result.out
