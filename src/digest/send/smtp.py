"""SMTP delivery: N long-lived connections (threads + smtplib), optional rate limit, TLS, AUTH.

Replies are sorted at this boundary: 250 -> sent, 4xx/drops -> transient (421 also reconnects),
5xx on RCPT/DATA -> permanent for that recipient, auth/TLS -> FatalDeliveryError (run stops).
"""

from __future__ import annotations

import logging
import queue
import re
import smtplib
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from digest.errors import DeliveryError, FatalDeliveryError, TransientDeliveryError
from digest.send.base import Admit, Job, Outcome, Result, ResultsCallback, backoff_delay

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SMTPOptions:
    host: str
    port: int
    security: str = "starttls"  # "starttls" | "tls" | "none"
    username: str | None = None
    #: The password itself, read from the environment by the caller; never logged.
    password: str | None = None
    timeout: float = 30.0
    connections: int = 2
    rate_per_second: float | None = None
    #: Tries to (re)connect before the run stops with the relay unreachable.
    max_attempts: int = 5
    ca_file: str | None = None
    #: First backoff delay in seconds (doubled per attempt, with jitter).
    backoff_base: float = 2.0
    local_hostname: str | None = None

    def where(self) -> str:
        return f"smtp://{self.host}:{self.port}"


class _RateLimiter:
    """Spaces message starts ``1/rate`` seconds apart across every connection."""

    def __init__(self, per_second: float | None) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self.next = time.monotonic()
        self.lock = threading.Lock()

    def wait(self, abort: threading.Event) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            slot = max(self.next, now)
            self.next = slot + self.interval
        if slot > now:
            abort.wait(slot - now)


def _reply(code: int, msg: bytes | str) -> str:
    text = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else msg
    return f"{code} {' '.join(text.split())}"


class SMTPSender:
    """Sends jobs over ``connections`` parallel SMTP connections, each reused for many messages.

    The calling thread feeds a small queue and records results; one worker thread per
    connection talks SMTP. Why threads and smtplib: the store and rendering are synchronous,
    the waits are network round trips that threads overlap, and smtplib gives every reply code.
    """

    def __init__(self, options: SMTPOptions) -> None:
        if options.username and not options.password:
            raise FatalDeliveryError(
                f"{options.where()}: smtp.username is set but the password variable is empty"
            )
        self.options = options
        self._context: ssl.SSLContext | None = None

    # ------------------------------------------------------------------ connections

    def _ssl_context(self) -> ssl.SSLContext:
        if self._context is None:
            try:
                # Verification and host name checks on; a private CA for self-hosted relays.
                self._context = ssl.create_default_context(cafile=self.options.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise FatalDeliveryError(
                    f"smtp.ca_file: cannot load {self.options.ca_file}: {exc}"
                ) from exc
        return self._context

    def connect(self) -> smtplib.SMTP:
        """One ready connection (TLS and AUTH done); DeliveryError subclasses only."""
        o = self.options
        where = o.where()
        client: smtplib.SMTP | None = None
        try:
            if o.security == "tls":
                client = smtplib.SMTP_SSL(
                    o.host,
                    o.port,
                    timeout=o.timeout,
                    context=self._ssl_context(),
                    local_hostname=o.local_hostname,
                )
            else:
                client = smtplib.SMTP(
                    o.host, o.port, timeout=o.timeout, local_hostname=o.local_hostname
                )
            client.ehlo()
            if o.security == "starttls":
                client.starttls(context=self._ssl_context())
                client.ehlo()
            if o.username:
                client.login(o.username, o.password or "")
            return client
        except smtplib.SMTPAuthenticationError as exc:
            _close(client)
            err = _reply(exc.smtp_code, exc.smtp_error)
            raise FatalDeliveryError(
                f"{where}: authentication failed for {o.username}: {err}"
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            _close(client)
            raise FatalDeliveryError(f"{where}: {exc} (check smtp.security / username)") from exc
        except smtplib.SMTPConnectError as exc:
            _close(client)
            err = _reply(exc.smtp_code, exc.smtp_error)
            if 400 <= exc.smtp_code < 500:
                raise TransientDeliveryError(f"{where}: server busy: {err}") from exc
            raise FatalDeliveryError(f"{where}: server refused the connection: {err}") from exc
        except smtplib.SMTPResponseException as exc:
            _close(client)
            err = _reply(exc.smtp_code, exc.smtp_error)
            if 400 <= exc.smtp_code < 500:
                raise TransientDeliveryError(f"{where}: {err}") from exc
            raise FatalDeliveryError(f"{where}: {err}") from exc
        except (ssl.SSLError, ssl.CertificateError) as exc:
            _close(client)
            raise FatalDeliveryError(f"{where}: TLS failed: {exc}") from exc
        except smtplib.SMTPServerDisconnected as exc:
            _close(client)
            raise TransientDeliveryError(f"{where}: connection closed: {exc}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            _close(client)
            reason = "timed out" if isinstance(exc, TimeoutError | socket.timeout) else str(exc)
            raise TransientDeliveryError(f"{where}: cannot connect: {reason}") from exc

    def _connect_retrying(self, abort: threading.Event) -> smtplib.SMTP | None:
        """Connect with backoff; None when aborted; TransientDeliveryError after max_attempts."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return self.connect()
            except TransientDeliveryError as exc:
                if attempt >= self.options.max_attempts:
                    raise TransientDeliveryError(
                        f"{exc} (gave up after {attempt} attempts; recipients left pending)"
                    ) from exc
                delay = backoff_delay(attempt, self.options.backoff_base)
                log.warning("SMTP connect failed, retrying in %.1fs: %s", delay, exc)
                if abort.wait(delay):
                    return None

    # ------------------------------------------------------------------ one message

    def _send_one(self, client: smtplib.SMTP, job: Job) -> tuple[Result, bool]:
        """(result, keep the connection)."""
        rcpt = job.recipient
        if not rcpt.isascii() and not client.has_extn("smtputf8"):
            # Without SMTPUTF8 the relay cannot take this address at all: fail this recipient
            # with the reason (every later try would end the same), keep the connection.
            return Result(
                job,
                Outcome.PERMANENT,
                f"RCPT {rcpt}: the relay does not offer SMTPUTF8, needed for a non-ASCII address",
            ), True
        if rcpt.isascii() and client.has_extn("pipelining"):
            return self._send_pipelined(client, job)
        options = [] if rcpt.isascii() else ["SMTPUTF8"]
        try:
            client.sendmail(job.envelope_from, [rcpt], job.data, mail_options=options)
        except smtplib.SMTPRecipientsRefused as exc:
            code, msg = exc.recipients.get(rcpt, (0, b"refused"))
            return self._classify(job, code, msg, "RCPT")
        except smtplib.SMTPDataError as exc:
            return self._classify(job, exc.smtp_code, exc.smtp_error, "DATA")
        except smtplib.SMTPSenderRefused as exc:
            if exc.smtp_code >= 500:
                # Our own sender refused: every message would fail alike, so stop the run.
                raise FatalDeliveryError(
                    f"{self.options.where()}: sender {job.envelope_from} refused: "
                    f"{_reply(exc.smtp_code, exc.smtp_error)}"
                ) from exc
            return self._classify(job, exc.smtp_code, exc.smtp_error, "MAIL")
        except smtplib.SMTPResponseException as exc:
            return self._classify(job, exc.smtp_code, exc.smtp_error, "SMTP")
        except (smtplib.SMTPException, OSError) as exc:
            # Dropped, reset or timed out: the message was not acknowledged; retry it.
            return Result(
                job, Outcome.TRANSIENT, f"connection lost: {exc or type(exc).__name__}"
            ), False
        return Result(job, Outcome.SENT), True

    def _send_pipelined(self, client: smtplib.SMTP, job: Job) -> tuple[Result, bool]:
        """RFC 2920: MAIL, RCPT and DATA in one write, then the message: two round trips
        instead of four (the relay advertised PIPELINING)."""
        try:
            # Addresses were validated on the way in: no parsing (smtplib.quoteaddr) needed.
            client.send(f"MAIL FROM:<{job.envelope_from}>\r\nRCPT TO:<{job.recipient}>\r\nDATA\r\n")
            mail = client.getreply()
            rcpt = client.getreply()
            data = client.getreply()
            if data[0] == 354:
                if mail[0] == 250 and rcpt[0] in (250, 251):
                    client.send(_dot_stuffed(job.data))
                    code, msg = client.getreply()
                    if code == 250:
                        return Result(job, Outcome.SENT), True
                    if code != 421:
                        client.rset()
                    return self._classify(job, code, msg, "DATA")
                # A server that opened DATA although the envelope failed: close it empty.
                client.send(b".\r\n")
                client.getreply()
            if 421 not in (mail[0], rcpt[0], data[0]):
                client.rset()
        except (smtplib.SMTPException, OSError) as exc:
            # Dropped, reset or timed out: the message was not acknowledged; retry it.
            return Result(
                job, Outcome.TRANSIENT, f"connection lost: {exc or type(exc).__name__}"
            ), False
        if mail[0] != 250:
            if mail[0] >= 500:
                raise FatalDeliveryError(
                    f"{self.options.where()}: sender {job.envelope_from} refused: {_reply(*mail)}"
                )
            return self._classify(job, *mail, "MAIL")
        if rcpt[0] not in (250, 251):
            return self._classify(job, *rcpt, "RCPT")
        return self._classify(job, *data, "DATA")

    def _classify(self, job: Job, code: int, msg: bytes | str, stage: str) -> tuple[Result, bool]:
        reply = f"{stage} {_reply(code, msg)}"
        if code == 421:  # the server is closing this channel: reconnect
            return Result(job, Outcome.TRANSIENT, reply), False
        if 500 <= code < 600:
            return Result(job, Outcome.PERMANENT, reply), True
        return Result(job, Outcome.TRANSIENT, reply), 400 <= code < 500

    # ------------------------------------------------------------------ workers

    def _worker(
        self,
        jobs: queue.Queue[Job | None],
        events: queue.Queue[Exception | None],
        abort: threading.Event,
        limiter: _RateLimiter,
        report: ResultsCallback,
        admit: Admit | None = None,
    ) -> None:
        """One connection: send jobs until told to stop; each result is recorded right here.

        ``admit`` is asked just before each message goes out (after the rate limiter)."""
        client: smtplib.SMTP | None = None

        def finish(result: Result) -> None:
            try:
                report([result])
            except Exception as exc:  # e.g. the database: stop, the caller re-raises it
                abort.set()
                events.put(exc)
            events.put(None)

        try:
            while True:
                job = jobs.get()
                if job is None:
                    return
                if abort.is_set():
                    finish(Result(job, Outcome.NOT_SENT, "run stopped"))
                    continue
                if client is None:
                    try:
                        client = self._connect_retrying(abort)
                    except DeliveryError as exc:
                        abort.set()
                        events.put(exc)
                        finish(Result(job, Outcome.NOT_SENT, str(exc)))
                        continue
                    if client is None:
                        finish(Result(job, Outcome.NOT_SENT, "run stopped"))
                        continue
                limiter.wait(abort)
                if admit is not None:
                    try:
                        admitted = admit(job)
                    except Exception as exc:  # e.g. the database: stop, the caller re-raises
                        abort.set()
                        events.put(exc)
                        finish(Result(job, Outcome.NOT_SENT, "could not mark it in flight"))
                        continue
                    if not admitted:
                        # Our claim is gone (we were paused past it): another sender has it.
                        abort.set()
                        finish(Result(job, Outcome.NOT_SENT, "claim lost"))
                        continue
                try:
                    result, keep = self._send_one(client, job)
                except FatalDeliveryError as exc:
                    abort.set()
                    events.put(exc)
                    result, keep = Result(job, Outcome.NOT_SENT, str(exc)), False
                except Exception as exc:  # a bug must not leave the caller waiting forever
                    log.exception("SMTP worker failed")
                    abort.set()
                    events.put(DeliveryError(f"{self.options.where()}: internal error: {exc}"))
                    result, keep = Result(job, Outcome.TRANSIENT, f"internal error: {exc}"), False
                # Recorded before anything else: the window in which a kill could make this
                # message go twice is just this commit.
                finish(result)
                if not keep:
                    _close(client, quit=False)
                    client = None
        finally:
            _close(client)

    def send_all(
        self,
        jobs: Iterable[Job],
        on_results: ResultsCallback,
        *,
        stop: threading.Event | None = None,
        admit: Admit | None = None,
    ) -> None:
        """Send every job; ``on_results`` is called by the connection threads, one at a time."""
        n = self.options.connections
        # A short queue: few messages are "in flight" (marked unknown) at any moment.
        todo: queue.Queue[Job | None] = queue.Queue(maxsize=2 * n)
        events: queue.Queue[Exception | None] = queue.Queue()
        abort = threading.Event()
        limiter = _RateLimiter(self.options.rate_per_second)
        lock = threading.Lock()

        def report(results: list[Result]) -> None:
            with lock:
                on_results(results)

        workers = [
            threading.Thread(
                target=self._worker,
                args=(todo, events, abort, limiter, report, admit),
                name=f"smtp-{i}",
                daemon=True,
            )
            for i in range(n)
        ]
        _quick_switching(True)
        for w in workers:
            w.start()
        error: Exception | None = None
        outstanding = 0
        it: Iterator[Job] = iter(jobs)
        exhausted = False
        try:
            while True:
                # Fill the free slots; building the next messages overlaps with the sending.
                while not exhausted and not todo.full():
                    if stop is not None and stop.is_set():
                        # Finish the messages on the wire; queued ones go back untouched.
                        abort.set()
                    if abort.is_set():
                        exhausted = True
                        _close_iter(it)
                        break
                    try:
                        job = next(it)
                    except StopIteration:
                        exhausted = True
                        break
                    todo.put(job)
                    outstanding += 1
                if exhausted and outstanding == 0:
                    break
                try:
                    event = events.get(timeout=0.2)
                except queue.Empty:
                    continue
                if event is None:
                    outstanding -= 1
                else:
                    error = error or event
        finally:
            # On an exception (Ctrl-C, database) queued jobs go back untouched, not out.
            abort.set()
            _close_iter(it)
            for _ in workers:
                todo.put(None)
            for w in workers:
                w.join(timeout=self.options.timeout + 5)
            _quick_switching(False)
        if error is not None:
            raise error


_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved = 0.005


def _quick_switching(on: bool) -> None:
    """A reply that has arrived must be recorded at once: with the default 5 ms GIL switch
    interval a connection thread can wait that long behind the message builder, widening the
    window in which a kill makes a message go twice. Counted, for concurrent senders."""
    global _switch_users, _switch_saved
    with _switch_lock:
        if on:
            if _switch_users == 0:
                _switch_saved = sys.getswitchinterval()
                sys.setswitchinterval(min(_switch_saved, 0.0005))
            _switch_users += 1
        else:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_saved)


_LEADING_DOT = re.compile(rb"(?m)^\.")


def _dot_stuffed(data: bytes) -> bytes:
    """The DATA payload: leading dots doubled, CRLF-terminated, then the final dot."""
    # base64 bodies never start a line with a dot: skip the regex pass over 40 KB then.
    q = _LEADING_DOT.sub(b"..", data) if data.startswith(b".") or b"\n." in data else data
    if not q.endswith(b"\r\n"):
        q += b"\r\n"
    return q + b".\r\n"


def _close_iter(it: Iterator[Job]) -> None:
    close = getattr(it, "close", None)
    if close is not None:
        close()


def _close(client: smtplib.SMTP | None, *, quit: bool = True) -> None:
    if client is None:
        return
    try:
        if quit:
            client.quit()
        else:
            client.close()
    except (smtplib.SMTPException, OSError):
        client.close()
