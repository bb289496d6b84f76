"""The bounce mailbox over IMAP (stdlib imaplib): list messages, hand them out, then move or
delete each one once the caller has processed it."""

from __future__ import annotations

import imaplib
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

from digest.errors import DeliveryError, TransientDeliveryError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IMAPOptions:
    host: str
    port: int
    security: str  # "tls" | "starttls" | "none"
    username: str
    #: The password itself, read from the environment by the caller; never logged.
    password: str | None
    folder: str = "INBOX"
    after: str = "move"  # "move" | "delete"
    processed_folder: str = "Processed"
    timeout: float = 30.0
    ca_file: str | None = None

    def where(self) -> str:
        return f"imap://{self.host}:{self.port}/{self.folder}"


def _quote(name: str) -> str:
    """A mailbox name as an IMAP quoted string."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Mailbox:
    """One IMAP session on the bounce folder: ``with Mailbox(opts) as box: for uid, data in
    box.messages(): ...; box.done(uid)``."""

    def __init__(self, options: IMAPOptions) -> None:
        self.options = options
        self.client: imaplib.IMAP4 | None = None
        self._can_move = False
        self._deleted = 0

    def __enter__(self) -> Mailbox:
        o = self.options
        context = ssl.create_default_context(cafile=o.ca_file) if o.security != "none" else None
        try:
            if o.security == "tls":
                client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    o.host, o.port, ssl_context=context, timeout=o.timeout
                )
            else:
                client = imaplib.IMAP4(o.host, o.port, timeout=o.timeout)
                if o.security == "starttls":
                    client.starttls(ssl_context=context)
        except (OSError, imaplib.IMAP4.error, ssl.SSLError) as exc:
            raise TransientDeliveryError(f"{o.where()}: cannot connect: {exc}") from exc
        self.client = client
        try:
            client.login(o.username, o.password or "")
        except imaplib.IMAP4.error as exc:
            self._close()
            raise DeliveryError(f"{o.where()}: login as {o.username} refused: {exc}") from exc
        try:
            typ, data = client.select(_quote(o.folder))
            if typ != "OK":
                raise DeliveryError(f"{o.where()}: cannot open folder {o.folder!r}: {data!r}")
            # The capabilities after login (the greeting's may not list MOVE yet).
            typ, caps = client.capability()
            words = caps[0].upper().split() if typ == "OK" and caps and caps[0] else []
            self._can_move = b"MOVE" in words or "MOVE" in client.capabilities
            if o.after == "move":
                # Create the processed folder when missing ("already exists" is fine).
                client.create(_quote(o.processed_folder))
        except (imaplib.IMAP4.error, OSError) as exc:
            self._close()
            raise TransientDeliveryError(f"{o.where()}: {exc}") from exc
        except DeliveryError:
            self._close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client = self.client
        if client is not None and self._deleted:
            try:
                client.expunge()
            except (imaplib.IMAP4.error, OSError) as e:
                log.warning("%s: expunge failed: %s", self.options.where(), e)
        self._close()

    def _close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            if client.state == "SELECTED":
                client.close()
            client.logout()
        except (TimeoutError, imaplib.IMAP4.error, OSError):
            pass

    def _client(self) -> imaplib.IMAP4:
        if self.client is None:
            raise DeliveryError(f"{self.options.where()}: not connected")
        return self.client

    def uids(self) -> list[str]:
        typ, data = self._client().uid("SEARCH", "UNDELETED")
        if typ != "OK" or not data or not data[0]:
            return []
        return [u.decode("ascii") for u in data[0].split() if u]

    def fetch(self, uid: str) -> bytes | None:
        """The raw message (BODY.PEEK: the \\Seen flag is left alone)."""
        typ, data = self._client().uid("FETCH", uid, "(BODY.PEEK[])")
        if typ != "OK":
            return None
        for item in data:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                return item[1]
        return None

    def messages(self, limit: int | None = None) -> Iterator[tuple[str, bytes]]:
        for n, uid in enumerate(self.uids()):
            if limit is not None and n >= limit:
                return
            data = self.fetch(uid)
            if data is not None:
                yield uid, data

    def done(self, uid: str) -> None:
        """The message is processed: move it to the processed folder, or delete it."""
        client = self._client()
        o = self.options
        if o.after == "move":
            if self._can_move:
                typ, data = client.uid("MOVE", uid, _quote(o.processed_folder))
                if typ != "OK":
                    raise TransientDeliveryError(f"{o.where()}: MOVE failed: {data!r}")
                return
            typ, data = client.uid("COPY", uid, _quote(o.processed_folder))
            if typ != "OK":
                raise TransientDeliveryError(f"{o.where()}: COPY failed: {data!r}")
        client.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)")
        self._deleted += 1
