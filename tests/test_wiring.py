"""Summarizers, senders, the DKIM signer and the topic matcher are built from the settings in one
place, ``pipeline/wiring.py``; nothing else in ``src/`` constructs them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from digest.config import Settings, parse_settings
from digest.errors import ConfigError
from digest.pipeline.wiring import make_matcher, make_sender, make_signer, make_summarizer
from digest.send import OutboxSender, SMTPSender
from digest.summarize import ExtractiveSummarizer, LLMSummarizer
from digest.topics import TopicMatcher

SRC = Path(__file__).resolve().parent.parent / "src" / "digest"
WIRING = SRC / "pipeline" / "wiring.py"
BUILT_ONLY_IN_WIRING = {
    "ExtractiveSummarizer",
    "LLMSummarizer",
    "SMTPSender",
    "OutboxSender",
    "DKIMSigner",
    "TopicMatcher",
}


def _constructions(path: Path) -> list[str]:
    """``Name(...)`` / ``x.Name(...)`` calls of the classes above, and the classes passed as a
    callable (``executor.submit(TopicMatcher, ...)``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name) and node.func.id in ("isinstance", "issubclass"):
            continue
        for callee in (node.func, *node.args):
            name = callee.id if isinstance(callee, ast.Name) else getattr(callee, "attr", None)
            if name in BUILT_ONLY_IN_WIRING:
                found.append(f"{path.relative_to(SRC.parent)}:{node.lineno}: {name}")
    return found


def test_summarizers_senders_and_the_matcher_are_constructed_only_in_the_wiring_module() -> None:
    outside = [
        hit for path in sorted(SRC.rglob("*.py")) if path != WIRING for hit in _constructions(path)
    ]
    assert outside == [], "construct these through digest.pipeline.wiring"
    assert len(_constructions(WIRING)) == len(BUILT_ONLY_IN_WIRING)


def _settings(data: dict[str, object]) -> Settings:
    return parse_settings(data, "t.toml")


def test_the_summarizer_follows_the_summary_section() -> None:
    extractive = make_summarizer(_settings({"summary": {"max_words": 30}}))
    assert isinstance(extractive, ExtractiveSummarizer)
    assert extractive.max_words == 30
    llm = make_summarizer(
        _settings({"summary": {"engine": "llm", "llm": {"model": "m"}, "max_words": 30}})
    )
    assert isinstance(llm, LLMSummarizer)
    assert llm.name == "llm:m"
    assert isinstance(llm.fallback, ExtractiveSummarizer)
    assert llm.fallback.max_words == 30
    llm.close()


def test_without_settings_the_summarizer_is_extractive_and_llm_is_refused() -> None:
    assert isinstance(make_summarizer(None), ExtractiveSummarizer)
    with pytest.raises(ConfigError, match=r"\[summary.llm\]"):
        make_summarizer(None, engine="llm")


def test_an_unknown_engine_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown engine 'gpt'"):
        make_summarizer(_settings({}), engine="gpt")


def test_the_llm_key_comes_from_the_named_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLM_KEY_FOR_TEST", "k-123")
    settings = _settings({"summary": {"engine": "llm", "llm": {"api_key_env": "LLM_KEY_FOR_TEST"}}})
    llm = make_summarizer(settings)
    assert isinstance(llm, LLMSummarizer)
    assert llm._client.headers["Authorization"] == "Bearer k-123"
    llm.close()


def test_the_sender_follows_the_delivery_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = make_sender(_settings({"delivery": {"outbox_dir": str(tmp_path)}}))
    assert isinstance(outbox, OutboxSender)
    assert outbox.issue_dir(3) == tmp_path / "3"
    confirmations = make_sender(
        _settings({"delivery": {"outbox_dir": str(tmp_path)}}), outbox_folder="confirmations"
    )
    assert isinstance(confirmations, OutboxSender)
    assert confirmations.issue_dir(3) == tmp_path / "confirmations"
    monkeypatch.delenv("DIGEST_SMTP_PASSWORD", raising=False)
    smtp = make_sender(_settings({"delivery": {"mode": "smtp"}, "smtp": {"port": 2525}}))
    assert isinstance(smtp, SMTPSender)
    assert smtp.options.port == 2525


def test_an_smtp_username_without_its_password_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DIGEST_SMTP_PASSWORD", raising=False)
    settings = _settings({"delivery": {"mode": "smtp"}, "smtp": {"username": "u"}})
    with pytest.raises(ConfigError, match=r"\$DIGEST_SMTP_PASSWORD is not set"):
        make_sender(settings)


def test_no_dkim_section_means_no_signer() -> None:
    assert make_signer(_settings({})) is None


def test_the_matcher_knows_the_configured_topics() -> None:
    settings = _settings({"topics": {"cloud": {"title": "Cloud", "include": ["sovereign cloud"]}}})
    matcher = make_matcher(settings)
    assert isinstance(matcher, TopicMatcher)
    matches = matcher.match("A sovereign cloud for Europe", "")
    assert [m.topic_id for m in matches if m.kept] == ["cloud"]
