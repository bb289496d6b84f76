"""Outbox mode: each message becomes ``<outbox>/<issue>/<address>.eml``, the issue ``index.html``.

Files are written atomically (temporary file, then rename): a resend after a crash replaces the
same file, so the outbox can never hold two copies for one reader.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from digest.errors import FatalDeliveryError
from digest.send.base import Admit, Job, Outcome, Result, ResultsCallback
from digest.send.message import safe_filename

#: Results are reported (and so recorded) every this many files.
REPORT_EVERY = 100


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class OutboxSender:
    """Writes messages to files instead of sending them (demo, review, external mailers)."""

    def __init__(self, outbox_dir: str | Path, *, folder: str | None = None) -> None:
        self.root = Path(outbox_dir)
        #: One fixed sub-folder instead of one per issue (confirmation emails).
        self.folder = folder

    def issue_dir(self, number: int) -> Path:
        return self.root / (self.folder or str(number))

    def path_for(self, number: int, address: str) -> Path:
        return self.issue_dir(number) / f"{safe_filename(address)}.eml"

    def write_page(self, number: int, html: str) -> Path:
        """The issue as a web page: ``<outbox>/<number>/index.html``."""
        path = self.issue_dir(number) / "index.html"
        try:
            _atomic_write(path, html.encode("utf-8"))
        except OSError as exc:
            raise FatalDeliveryError(f"{path}: cannot write: {exc.strerror}") from exc
        return path

    def send_all(
        self,
        jobs: Iterable[Job],
        on_results: ResultsCallback,
        *,
        stop: threading.Event | None = None,
        admit: Admit | None = None,
    ) -> None:
        batch: list[Result] = []
        it = iter(jobs)
        try:
            for job in it:
                if admit is not None and not admit(job):
                    batch.append(Result(job, Outcome.NOT_SENT, "claim lost"))
                    break
                path = self.path_for(job.issue_number, job.recipient)
                # As the receiving server's delivery agent would: the envelope sender on top
                # (the VERP return path, when configured, shows there).
                data = f"Return-Path: <{job.envelope_from}>\r\n".encode() + job.data
                try:
                    _atomic_write(path, data)
                except OSError as exc:
                    # A full or read-only disk fails every message alike: stop the run.
                    batch.append(Result(job, Outcome.NOT_SENT, str(exc)))
                    raise FatalDeliveryError(f"{path}: cannot write: {exc.strerror}") from exc
                batch.append(Result(job, Outcome.SENT))
                if len(batch) >= REPORT_EVERY:
                    on_results(batch)
                    batch = []
                if stop is not None and stop.is_set():
                    break
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
            if batch:
                on_results(batch)
