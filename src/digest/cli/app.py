"""The Click application object, global options, and the exit-code policy.

Every command module registers on ``app`` (or a group under it); ``main`` turns DigestError into a
one-line message and an exit code: 0 ok, 1 runtime failure, 2 usage or config error.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console

from digest import config
from digest.errors import ConfigError, DigestError, LockedError, UsageError

#: Results go to stdout, everything else (progress, warnings, errors) to stderr.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class Globals:
    config_path: Path | None = None
    log_format: str = "text"
    verbose: int = 0
    quiet: bool = False
    _settings: config.Settings | None = None

    def settings(self) -> config.Settings:
        """Load (once per command) and validate the configuration."""
        if self._settings is None:
            self._settings = config.load(self.config_path)
        return self._settings


STATE = Globals()


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example: digest --config config/demo.toml run --once",
)
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar=config.CONFIG_ENV,
    show_envvar=True,
    help="Config file (default: $DIGEST_CONFIG, then config/digest.toml).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Logs on stderr: readable text, or one JSON object per line.",
)
@click.option("--verbose", "-v", count=True, help="More logs (-vv: debug).")
@click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors.")
@click.version_option(package_name="digest")
def app(config_path: Path | None, log_format: str, verbose: int, quiet: bool) -> None:
    """Self-hosted newsletter digest: fetch feeds, keep what matches the editors' topics,
    summarize, and send one well-made email."""
    STATE.config_path = config_path
    STATE.log_format = log_format
    STATE.verbose = verbose
    STATE.quiet = quiet
    STATE._settings = None
    setup_logging()


def setup_logging() -> None:
    from digest.infra.logs import configure

    level = logging.WARNING if STATE.quiet else logging.INFO
    if STATE.verbose >= 2:
        level = logging.DEBUG
    configure(fmt=STATE.log_format, level=level)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one line on stderr and exit with ``code``."""
    err.print(f"error: {message}", markup=False)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: the exit-code policy lives here."""
    try:
        rv = app.main(args=argv, prog_name="digest", standalone_mode=False)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (ConfigError, UsageError, LockedError) as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(2)
    except DigestError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except OSError as exc:
        # The system refused a read or write (stdout on a full disk, a file gone): one line
        # with its reason, like every other runtime failure. click handles a closed pipe.
        err.print(f"error: {exc}", markup=False)
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)
