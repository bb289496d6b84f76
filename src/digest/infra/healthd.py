"""The daemon's tiny HTTP endpoint: ``/healthz`` (JSON, 200 or 503) and ``/metrics`` (Prometheus).

Stdlib ``http.server`` in a background thread: two read-only GET routes need no framework, and
the daemon keeps working even if a scraper misbehaves.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from digest.errors import ConfigError
from digest.infra.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)


@dataclass
class Health:
    """What /healthz judges: the scheduler is running, the lock is ours, jobs are not failing."""

    metrics: Metrics
    #: Returns True while the scheduler is running.
    scheduler_running: Callable[[], bool]
    #: Returns True once the database lock has been lost.
    lock_lost: Callable[[], bool] = lambda: False
    #: Failed runs in a row after which a job makes the daemon unhealthy.
    unhealthy_after: int = 3
    #: Returns each job's next run time, for the body.
    next_runs: Callable[[], dict[str, datetime | None]] = field(default=dict)
    #: Returns (issue, seconds it has waited for approval, alert threshold) or None.
    waiting: Callable[[], tuple[int, float, float] | None] = lambda: None
    #: Returns a description of the active daemon while this one waits as a hot standby.
    standby_for: Callable[[], str | None] = lambda: None

    def check(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, JSON-able body saying why)."""
        active = self.standby_for()
        if active is not None:
            # A standby is healthy while it waits: ready to take over, nothing scheduled here.
            return True, {
                "status": "standby",
                "active": active,
                "problems": [],
                "jobs": {},
                "time": _iso(datetime.now(UTC)),
            }
        problems: list[str] = []
        if not self.scheduler_running():
            problems.append("scheduler is not running")
        if self.lock_lost():
            problems.append("lost the database lock to another process")
        jobs: dict[str, Any] = {}
        next_runs = self.next_runs()
        for name, st in sorted(self.metrics.jobs().items()):
            if st.consecutive_failures >= self.unhealthy_after:
                n = st.consecutive_failures
                times = "once" if n == 1 else f"{n} times in a row"
                problems.append(f"{name} failed {times}: {st.last_error}")
            jobs[name] = {
                "runs": st.runs,
                "consecutive_failures": st.consecutive_failures,
                "last_success": _iso(st.last_success),
                "last_failure": _iso(st.last_failure),
                "last_error": st.last_error,
                "last_duration_seconds": st.last_duration,
            }
        for name, when in next_runs.items():
            jobs.setdefault(name, {"runs": 0})["next_run"] = _iso(when)
        warnings: list[str] = []
        found = self.waiting()
        if found is not None and found[1] > found[2]:
            # Degraded, not unhealthy (still 200): restarting the daemon would not approve it.
            warnings.append(f"issue #{found[0]} has waited {found[1] / 3600:.1f} h for approval")
        status = "unhealthy" if problems else ("degraded" if warnings else "ok")
        body = {
            "status": status,
            "problems": problems,
            "warnings": warnings,
            "jobs": jobs,
            "time": _iso(datetime.now(UTC)),
        }
        return not problems, body


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def parse_address(value: str) -> tuple[str, int]:
    """``"127.0.0.1:9108"``, ``"[::1]:9108"`` or ``":9108"`` (all interfaces) -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"daemon.http: expected host:port, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            ok, body = self.server.health.check()
            self._send(200 if ok else 503, "application/json", json.dumps(body).encode())
        elif path == "/metrics":
            self._send(200, CONTENT_TYPE, self.server.health.metrics.exposition())
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found: try /healthz or /metrics\n")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Scrapes every 15 s would drown the daemon's own log: keep them for debugging only.
        log.debug("http %s", format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], health: Health) -> None:
        self.health = health
        super().__init__(address, _Handler)


class HealthServer:
    """A running /healthz + /metrics server; ``close()`` stops it."""

    def __init__(self, address: str, health: Health) -> None:
        host, port = parse_address(address)
        try:
            self._server = _Server((host, port), health)
        except OSError as exc:
            raise ConfigError(f"daemon.http: cannot listen on {address}: {exc.strerror}") from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="healthd", daemon=True
        )
        self._thread.start()
        log.info("serving /healthz and /metrics", extra={"http": self.url})

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
