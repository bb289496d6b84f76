"""The LLM summarizer against a local server speaking the chat-completions shape: answers are
used and cached; errors, timeouts and over-long answers fall back to the extractive summary."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from digest.config import parse_settings
from digest.pipeline.wiring import make_summarizer
from digest.summarize import ExtractiveSummarizer, LLMSummarizer
from digest.summarize.llm import cache_key

TITLE = "A page is turning for the French sovereign cloud"
ANSWER = (
    "Orange is shutting down Cloudwatt on February 1st, a failure of the publicly funded "
    "French sovereign cloud that Bercy's new plans should learn from."
)


class DictCache:
    """The SummaryCache contract, as the pipeline's llm_cache table fulfils it."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def put(self, key: str, value: str) -> None:
        self.data[key] = value


def completion(content: str) -> dict[str, object]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "tiny",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }


def summarizer(
    server: HTTPServer, cache: DictCache | None = None, timeout: float = 5.0
) -> LLMSummarizer:
    return LLMSummarizer(
        base_url=server.url_for("/v1"),
        model="tiny",
        api_key="sk-test",
        timeout=timeout,
        max_words=60,
        cache=cache,
        fallback=ExtractiveSummarizer(max_words=60),
    )


def test_the_llm_answer_becomes_the_summary(httpserver: HTTPServer, seed: str) -> None:
    httpserver.expect_oneshot_request("/v1/chat/completions", method="POST").respond_with_json(
        completion(f"  “{ANSWER}”\n")
    )
    summary = summarizer(httpserver).summarize(TITLE, seed)
    assert summary.text == ANSWER
    assert summary.engine == "llm:tiny"
    assert summary.language == "en"
    assert summary.source_text.startswith("The Cloudwatt")
    httpserver.check_assertions()


FRENCH = (
    "<p>La CNIL a publié mardi une recommandation sur l'hébergement des données de santé. "
    "Elle demande aux administrations de choisir des prestataires qui ne sont pas soumis au "
    "Cloud Act américain.</p><p>Lire la suite</p>"
)
TEXT = (
    "<p>Orange is shutting down Cloudwatt on February 1st. The publicly funded French sovereign "
    "cloud never found its customers, and Bercy's new plans should learn from it.</p>"
)


def test_the_request_asks_for_one_or_two_sentences_in_the_items_language(
    httpserver: HTTPServer,
) -> None:
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return Response(
            json.dumps(completion("Une page se tourne.")), content_type="application/json"
        )

    httpserver.expect_request("/v1/chat/completions").respond_with_handler(handler)
    summary = summarizer(httpserver).summarize("La CNIL et le cloud", FRENCH)
    assert summary.language == "fr"
    body = json.loads(seen[0].get_data())
    assert seen[0].headers["Authorization"] == "Bearer sk-test"
    assert body["model"] == "tiny"
    system, user = body["messages"]
    assert "one or two sentences" in system["content"]
    assert "in French" in system["content"]
    assert user["content"].startswith("Title: La CNIL et le cloud\n\nLa CNIL a publié")
    assert "Lire la suite" not in user["content"]  # the model reads clean text


def test_a_cached_answer_is_reused_without_a_second_request(
    httpserver: HTTPServer, seed: str
) -> None:
    httpserver.expect_oneshot_request("/v1/chat/completions").respond_with_json(completion(ANSWER))
    cache = DictCache()
    first = summarizer(httpserver, cache).summarize(TITLE, seed)
    second = summarizer(httpserver, cache).summarize(TITLE, seed)
    assert first == second
    assert len(httpserver.log) == 1
    assert list(cache.data) == [cache_key("tiny", "en", 60, TITLE, first.source_text)]
    assert next(iter(cache.data)).endswith(":tiny")


def test_an_http_error_falls_back_to_the_extractive_summary_and_is_logged(
    httpserver: HTTPServer, seed: str, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request("/v1/chat/completions").respond_with_data("overloaded", status=503)
    cache = DictCache()
    with caplog.at_level(logging.WARNING):
        summary = summarizer(httpserver, cache).summarize(TITLE, seed)
    assert summary == ExtractiveSummarizer(max_words=60).summarize(TITLE, seed)
    assert summary.engine == "extractive"
    assert "HTTP 503" in caplog.text
    assert "sk-test" not in caplog.text
    assert cache.data == {}  # a failure is never cached


def test_a_timeout_falls_back(
    httpserver: HTTPServer, seed: str, caplog: pytest.LogCaptureFixture
) -> None:
    def slow(request: Request) -> Response:
        time.sleep(1.0)
        return Response(json.dumps(completion(ANSWER)), content_type="application/json")

    httpserver.expect_request("/v1/chat/completions").respond_with_handler(slow)
    with caplog.at_level(logging.WARNING):
        summary = summarizer(httpserver, timeout=0.2).summarize(TITLE, seed)
    assert summary.engine == "extractive"
    assert "timed out" in caplog.text


def test_regression_an_endpoint_that_trickles_its_answer_is_cut_at_the_timeout_of_the_request(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    # One byte every 0.1 s: each read is quicker than the 0.5 s timeout, so a per-read timeout
    # never fires and the whole answer (then refused as "not JSON") would take 2 s. The timeout
    # is the whole request's: the run is told "timed out" and the endpoint is not asked again.
    def trickle(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            for _ in range(20):
                time.sleep(0.1)
                yield b" "

        return Response(body(), content_type="application/json")

    httpserver.expect_request("/v1/chat/completions").respond_with_handler(trickle)
    llm = summarizer(httpserver, timeout=0.5)
    with caplog.at_level(logging.WARNING):
        summary = llm.summarize(TITLE, TEXT)
    assert summary.engine == "extractive"
    assert "timed out" in caplog.text
    assert llm.broken is not None


def test_an_answer_over_a_megabyte_is_refused_unread(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request("/v1/chat/completions").respond_with_data(
        b"[" + b"0," * 1_000_000 + b"0]", content_type="application/json"
    )
    with caplog.at_level(logging.WARNING):
        summary = summarizer(httpserver).summarize(TITLE, TEXT)
    assert summary.engine == "extractive"
    assert "answer over 1000000 bytes" in caplog.text


def test_an_over_long_answer_falls_back(
    httpserver: HTTPServer, seed: str, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request("/v1/chat/completions").respond_with_json(
        completion(" ".join(["word"] * 61) + ".")
    )
    with caplog.at_level(logging.WARNING):
        summary = summarizer(httpserver).summarize(TITLE, seed)
    assert summary.engine == "extractive"
    assert "too long" in caplog.text


def test_an_answer_in_the_wrong_language_falls_back(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request("/v1/chat/completions").respond_with_json(
        completion("The French regulator published a recommendation on the hosting of health data.")
    )
    with caplog.at_level(logging.WARNING):
        summary = summarizer(httpserver).summarize("La CNIL et le cloud", FRENCH)
    assert summary.engine == "extractive"
    assert summary.language == "fr"
    assert "answer in 'en'" in caplog.text


@pytest.mark.parametrize(
    "payload",
    [{"choices": []}, {"error": {"message": "bad key"}}, completion("   "), [1, 2]],
)
def test_a_malformed_answer_falls_back(httpserver: HTTPServer, seed: str, payload: object) -> None:
    httpserver.expect_request("/v1/chat/completions").respond_with_json(payload)
    assert summarizer(httpserver).summarize(TITLE, seed).engine == "extractive"


def test_an_unreachable_endpoint_falls_back(seed: str) -> None:
    llm_config = {"base_url": "http://127.0.0.1:9/v1", "model": "m", "timeout": 2}
    settings = parse_settings({"summary": {"engine": "llm", "llm": llm_config}}, "t.toml")
    llm = make_summarizer(settings)
    assert llm.summarize(TITLE, seed).engine == "extractive"


def test_an_item_without_text_does_not_call_the_model(httpserver: HTTPServer) -> None:
    summary = summarizer(httpserver).summarize("Title only", "<p>Read more</p>")
    assert summary.text == ""
    assert len(httpserver.log) == 0
