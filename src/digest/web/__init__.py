"""The subscribers' web front (``digest serve``): archive, double opt-in sign-up, one-click
unsubscribe and preferences, safe by default (CSRF, strict headers, no JavaScript)."""

from digest.web.app import create_app

__all__ = ["create_app"]
