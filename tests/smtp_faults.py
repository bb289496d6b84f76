"""A real local SMTP server (aiosmtpd) that misbehaves on purpose, for delivery tests.

``FaultHandler`` answers per recipient and per attempt: ``{"b@x.org": ["451", None]}`` means
"451 at the first RCPT of b@x.org, accept the second". Faults: "451", "421", "550", "552"
(any code), and "drop" (connection closed without a reply). ``stage`` picks RCPT or DATA.
``self_signed`` makes a certificate for 127.0.0.1 / localhost; ``FaultServer`` runs the
handler with implicit TLS, STARTTLS and AUTH as asked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

REPLIES = {
    "421": "421 4.3.2 Service shutting down, closing channel",
    "451": "451 4.3.0 Temporary local problem, try later",
    "452": "452 4.2.2 Mailbox full",
    "550": "550 5.1.1 No such user here",
    "552": "552 5.3.4 Message too big",
    "554": "554 5.7.1 Rejected as spam",
}


@dataclass
class Delivered:
    mail_from: str
    rcpt: str
    data: bytes

    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class FaultHandler:
    """Accepts mail like a relay, except for the faults planned per recipient and attempt."""

    #: address -> what to do at each successive attempt (None: accept).
    plan: dict[str, list[str | None]] = field(default_factory=dict)
    #: Where the planned fault strikes: "RCPT" or "DATA".
    stage: str = "RCPT"
    #: Advertise PIPELINING (RFC 2920), so clients may send MAIL, RCPT and DATA at once.
    pipelining: bool = False
    delivered: list[Delivered] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _fault(self, address: str) -> str | None:
        with self.lock:
            n = self.attempts[address]
            self.attempts[address] += 1
        steps = self.plan.get(address, [])
        return steps[n] if n < len(steps) else None

    def _apply(self, server: Any, fault: str | None) -> str | None:
        if fault is None:
            return None
        if fault == "drop":
            server.transport.close()
            return "421 4.4.2 connection dropped"  # never reaches the client
        return REPLIES.get(fault, f"{fault} planned failure")

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.stage == "RCPT":
            reply = self._apply(server, self._fault(address.lower()))
            if reply:
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        rcpt = envelope.rcpt_tos[0]
        if self.stage == "DATA":
            reply = self._apply(server, self._fault(rcpt.lower()))
            if reply:
                return reply
        with self.lock:
            self.delivered.append(Delivered(envelope.mail_from, rcpt, bytes(envelope.content)))
        return "250 2.0.0 OK queued"

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(d.rcpt.lower() for d in self.delivered)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def self_signed(folder: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` and 127.0.0.1: (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}-cert.pem", folder / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Users:
    """AUTH PLAIN/LOGIN against a fixed table."""

    table: dict[str, str]

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode()
            if self.table.get(user) == auth_data.password.decode():
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


def server_tls(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """A server-side TLS context on a fresh self-signed certificate, and that certificate."""
    cert, key = self_signed(folder)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx, cert


@dataclass
class FaultServer:
    host: str
    port: int
    handler: FaultHandler


@contextmanager
def fault_server(
    handler: FaultHandler | None = None,
    *,
    tls: Any = None,
    starttls: Any = None,
    users: dict[str, str] | None = None,
) -> Iterator[FaultServer]:
    """Run ``handler`` on loopback; ``tls``/``starttls`` take an ``ssl.SSLContext``."""
    handler = handler or FaultHandler()
    port = free_port()
    kwargs: dict[str, Any] = {}
    if tls is not None:
        kwargs["ssl_context"] = tls
    if starttls is not None:
        kwargs["tls_context"] = starttls
        kwargs["require_starttls"] = True
    if users is not None:
        kwargs["authenticator"] = Users(users)
        kwargs["auth_require_tls"] = tls is None and starttls is not None
        kwargs["auth_required"] = True
    # 60 s instead of aiosmtpd's 5 s to start and answer a first connection (with a TLS handshake
    # under ``tls``): a loaded machine can take longer. Only a failure waits this long.
    controller = Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=60, **kwargs)
    controller.start()
    try:
        yield FaultServer("127.0.0.1", port, handler)
    finally:
        controller.stop()


@dataclass
class HoldingHandler(FaultHandler):
    """A relay that accepts ``hold_after`` messages, then holds the next until ``release``.

    So the signal is sure to land mid-run, with a message in hand: pacing every message by a
    fixed delay instead let a starved test process send it after the whole run had finished.
    """

    hold_after: int = 5
    release: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        while sum(self.counts().values()) >= self.hold_after and not self.release.is_set():
            await asyncio.sleep(0.01)
        return await super().handle_DATA(server, session, envelope)


@dataclass
class SlowHandler(FaultHandler):
    """A relay taking ``delay`` seconds per message: the sender is surely mid-issue when frozen."""

    delay: float = 0.01

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)
