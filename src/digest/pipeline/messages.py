"""Each reader's message for one issue: the issue rendered once per (language, topics) variant,
then personalized and written as wire bytes (signed when DKIM is configured)."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from digest.config import Settings
from digest.errors import ConfigError, DeliveryError
from digest.models import IssueContent, RenderedIssue
from digest.pipeline.bounces import return_path_for
from digest.pipeline.wiring import make_signer
from digest.render import LANGUAGES, RenderCache, personalize, select_sections
from digest.send import (
    DKIMSigner,
    MessageParts,
    header_value,
    list_id_for,
    message_id_for,
    split_from,
    unsubscribe_mailto,
    wire_message,
)
from digest.send.message import address_domain, crlf
from digest.tokens import make_token


def render_cache(settings: Settings) -> RenderCache:
    """The issue's renders as readers get them: the configured subject, brand and templates
    (the messages, and the desk's preview of the email)."""
    return RenderCache(
        subject_format=settings.delivery.subject,
        mark_machine_written=settings.summary.mark_machine_written,
        brand=settings.brand.to_model(),
        templates=settings.render.templates,
    )


class MessageFactory:
    """Builds each reader's wire message: cached variant render + cheap personalization."""

    def __init__(
        self, settings: Settings, content: IssueContent, secret: bytes, *, subject_prefix: str = ""
    ) -> None:
        self.settings = settings
        #: "[TEST] " for an editor's test message.
        self.subject_prefix = subject_prefix
        self.content = content
        self.secret = secret
        d = settings.delivery
        check_shared_headers(settings)
        self.from_addr = d.from_
        self.envelope_from = split_from(d.from_)[1]
        self.domain = address_domain(self.envelope_from)
        self.list_id = list_id_for(settings.digest.title, d.list_id or self.domain)
        self.base_url = settings.digest.base_url
        self.cache = render_cache(settings)
        self._variants: dict[tuple[str | None, tuple[str, ...]], RenderedIssue] = {}
        self.signer: DKIMSigner | None = make_signer(settings)

    def _variant(self, language: str | None, topics: tuple[str, ...]) -> RenderedIssue:
        """The compiled issue for this reader, line ends made canonical once per variant."""
        key = (language, topics)
        found = self._variants.get(key)
        if found is None:
            r = self.cache.get(self.content, language=language, topics=topics or None)
            found = dataclasses.replace(r, html=crlf(r.html), text=crlf(r.text))
            if len(self._variants) < 1024:  # topic sets are few; never unbounded
                self._variants[key] = found
        return found

    def envelope_for(self, subscriber_id: int) -> str:
        """MAIL FROM of one message: its VERP return path when configured, else the From."""
        if self.settings.delivery.return_path is None:
            return self.envelope_from
        return return_path_for(self.settings, self.secret, self.content.number, subscriber_id)

    def message_id(self, token_key: str) -> str:
        return message_id_for(self.secret, self.content.number, token_key, self.domain)

    def wants_nothing(self, topics: tuple[str, ...]) -> bool:
        """True when this reader's topics select no section: nobody gets an empty issue."""
        return not select_sections(self.content, topics or None)

    def build(
        self,
        *,
        email: str,
        name: str | None,
        topics: tuple[str, ...],
        language: str | None,
        token_key: str,
        message_id: str,
        now: datetime,
    ) -> bytes:
        # A language the email has no words for falls back to the digest's own.
        lang = language if language and language.split("-")[0] in LANGUAGES else None
        rendered = self._variant(lang, topics)
        unsub = make_token(self.secret, "unsubscribe", token_key)
        mailto = unsubscribe_mailto(self.from_addr, unsub)
        https = prefs = None
        if self.base_url:
            https = f"{self.base_url}/unsubscribe/{unsub}"
            prefs = f"{self.base_url}/preferences/" + make_token(
                self.secret, "preferences", token_key
            )
        html, text = personalize(
            rendered,
            name=name,
            unsubscribe_url=https or mailto,
            preferences_url=prefs,
            email=email,
        )
        parts = MessageParts(
            html=html,
            text=text,
            subject=self.subject_prefix + rendered.subject,
            from_addr=self.from_addr,
            to_addr=email,
            to_name=name,
            reply_to=self.settings.delivery.reply_to,
            message_id=message_id,
            list_id=self.list_id,
            unsubscribe_https=https,
            unsubscribe_mailto=mailto,
            date=now,
        )
        data = wire_message(parts, canonical=True)
        return self.signer.sign(data) if self.signer else data


def check_shared_headers(settings: Settings) -> None:
    """Values every message carries are checked once, before anyone's row is touched: a line
    break there is the configuration's fault (ConfigError naming the key), not a reader's."""
    d = settings.delivery
    for key, value in (
        ("delivery.from", d.from_),
        ("delivery.reply_to", d.reply_to),
        ("delivery.list_id", d.list_id),
        ("digest.title", settings.digest.title),
        ("digest.base_url", settings.digest.base_url),
    ):
        if value is None:
            continue
        try:
            header_value(key, value)
        except DeliveryError as exc:
            raise ConfigError(f"{settings.source}: {exc}") from None
