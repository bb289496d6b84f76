"""Command-line interface: the only place that prints or exits.

Each module below adds its commands to ``digest.cli.app.app``.
"""

from digest.cli import (  # noqa: F401  (imported for their commands)
    bounces,
    core,
    desk,
    ops,
    people,
    summarize,
    topics,
    web,
)
from digest.cli.app import app, main

__all__ = ["app", "main"]
