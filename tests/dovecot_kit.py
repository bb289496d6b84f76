"""A real IMAP server for the tests: Debian's dovecot on a loopback port with a private config
(plain auth on loopback, one passwd-file user, maildir in a temporary folder)."""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER = "bounces"
PASSWORD = "imap-test-password"


@dataclass
class Dovecot:
    host: str
    port: int
    user: str
    password: str
    root: Path

    def client(self) -> imaplib.IMAP4:
        c = imaplib.IMAP4(self.host, self.port, timeout=30)
        c.login(self.user, self.password)
        return c

    def append(self, data: bytes, folder: str = "INBOX") -> None:
        c = self.client()
        try:
            typ, info = c.append(folder, None, None, data)
            assert typ == "OK", info
        finally:
            c.logout()

    def count(self, folder: str) -> int:
        c = self.client()
        try:
            typ, _ = c.select(f'"{folder}"', readonly=True)
            if typ != "OK":
                return 0
            typ, found = c.uid("SEARCH", "UNDELETED")
            return len(found[0].split()) if found and found[0] else 0
        finally:
            c.logout()


def _users() -> tuple[str, str, int, int]:
    """(internal user, login user, mail uid, mail gid): dovecot's own accounts when run as
    root (mail may not be owned by uid 0), else everything as the current user."""
    if os.geteuid() == 0:
        internal = pwd.getpwnam("dovecot")
        login = pwd.getpwnam("dovenull")
        return internal.pw_name, login.pw_name, internal.pw_uid, internal.pw_gid
    me = pwd.getpwuid(os.geteuid())
    return me.pw_name, me.pw_name, me.pw_uid, me.pw_gid


CONFIG = """protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  inet_listener http {{
    port = 0
  }}
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
"""


@contextmanager
def dovecot_server() -> Iterator[Dovecot]:
    if not Path(DOVECOT).exists():
        reason = "dovecot not installed (apt-get install dovecot-imapd; .ci/run does it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"IMAP tests cannot be skipped under CI: {reason}")
        pytest.skip(reason)
    internal, login, uid, gid = _users()
    # Not pytest's tmp_path: its parents are private to us, and dovecot's users must get in.
    root = Path(tempfile.mkdtemp(prefix="digest-dovecot-"))
    root.chmod(0o755)
    for sub in ("run", "state", "mail"):
        (root / sub).mkdir()
    if os.geteuid() == 0:
        os.chown(root / "mail", uid, gid)
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    (root / "passwd").chmod(0o644)
    port = free_port()
    conf = root / "dovecot.conf"
    conf.write_text(
        CONFIG.format(root=root, internal=internal, login=login, uid=uid, gid=gid, port=port)
    )
    proc = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)], stderr=subprocess.PIPE)
    try:
        server = Dovecot("127.0.0.1", port, USER, PASSWORD, root)
        deadline = time.monotonic() + 30
        while True:
            try:
                server.client().logout()
                break
            except (OSError, imaplib.IMAP4.error):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (
                        (root / "dovecot.log").read_text()
                        if (root / "dovecot.log").exists()
                        else ""
                    )
                    err = (
                        proc.stderr.read().decode()
                        if proc.stderr and proc.poll() is not None
                        else ""
                    )
                    pytest.fail(f"dovecot did not start: {err} {log[-2000:]}")
                time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
