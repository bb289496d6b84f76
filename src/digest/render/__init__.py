"""Render an issue: email HTML (Jinja2 + MJML) and text with personal placeholders, per-reader
personalization, the issue as a web page, and the subject line. Templates: digest/templates/.
"""

from __future__ import annotations

from .core import (
    PLACEHOLDERS,
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
    "LANGUAGES",
    "PLACEHOLDERS",
    "RenderCache",
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
