"""Render an issue: email HTML (Jinja2 + MJML) and text with personal placeholders, per-reader
personalization, the issue as a web page, and the subject line. Templates: the repository's
top-level templates/ (digest/templates/ in the wheel), an operator's [render] folder first.
"""

from __future__ import annotations

from .core import (
    HTML_BUDGET,
    PLACEHOLDERS,
    TEMPLATE_NAMES,
    check_templates,
    first_sentence,
    format_subject,
    lead_entry,
    note_email_html,
    page_style_csp_source,
    render_issue,
    render_page,
    safe_http_url,
    select_sections,
)
from .i18n import LANGUAGES
from .personal import RenderCache, forget_templates, personalize

__all__ = [
    "HTML_BUDGET",
    "LANGUAGES",
    "PLACEHOLDERS",
    "TEMPLATE_NAMES",
    "RenderCache",
    "check_templates",
    "first_sentence",
    "forget_templates",
    "format_subject",
    "lead_entry",
    "note_email_html",
    "page_style_csp_source",
    "personalize",
    "render_issue",
    "render_page",
    "safe_http_url",
    "select_sections",
]
