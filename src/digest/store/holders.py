"""Who holds a lease or a claim: host, boot, pid namespace, pid and process start time.

Hostname and pid alone are not enough: containers share hostnames and reuse pids. A holder on
this host, in this boot and this pid namespace can be checked directly: gone, or its pid now
belongs to a younger process, means it is dead and its lease can be taken at once.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from enum import Enum
from functools import cache

import psutil

#: Format marker of encoded holders ("host:pid:nonce" rows written before it are "unknown").
_PREFIX = "h1"
#: Two readings of one process's start time differ by less (psutil: boot time + clock ticks).
_START_SLACK = 0.05


class Liveness(Enum):
    """What this process can tell about a holder."""

    ALIVE = "alive"
    DEAD = "dead"
    #: On another host, boot or pid namespace (or an old row): only its lease's expiry tells.
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Holder:
    """A process that may hold a lease; ``nonce`` tells two holds by one process apart."""

    host: str
    boot_id: str
    pid_ns: str
    pid: int
    started: float
    nonce: str

    def encode(self) -> str:
        return "|".join(
            (
                _PREFIX,
                self.host,
                self.boot_id,
                self.pid_ns,
                str(self.pid),
                f"{self.started:.2f}",
                self.nonce,
            )
        )

    @classmethod
    def decode(cls, text: str) -> Holder | None:
        """The holder written by ``encode``; None for a row of another format."""
        parts = text.split("|")
        if len(parts) != 7 or parts[0] != _PREFIX:
            return None
        try:
            return cls(parts[1], parts[2], parts[3], int(parts[4]), float(parts[5]), parts[6])
        except ValueError:
            return None

    def liveness(self) -> Liveness:
        """Whether this holder still runs, judged from this process's point of view."""
        me = this_process()
        if self.host != me.host or not self.boot_id or not self.pid_ns:
            return Liveness.UNKNOWN
        if self.boot_id != me.boot_id:
            return Liveness.DEAD  # same host, booted since: every process of that boot is gone
        if self.pid_ns != me.pid_ns:
            return Liveness.UNKNOWN  # another container: its pids are not ours to look at
        try:
            process = psutil.Process(self.pid)
            if abs(process.create_time() - self.started) > _START_SLACK:
                return Liveness.DEAD  # the pid was reused by another process
            if process.status() == psutil.STATUS_ZOMBIE:
                return Liveness.DEAD  # killed, not yet reaped by its parent
        except psutil.NoSuchProcess:
            return Liveness.DEAD
        except psutil.Error:
            return Liveness.UNKNOWN
        return Liveness.ALIVE


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def _pid_ns() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


@cache
def _identity(pid: int) -> tuple[str, str, str, float]:
    return (
        socket.gethostname(),
        _read("/proc/sys/kernel/random/boot_id"),
        _pid_ns(),
        psutil.Process(pid).create_time(),
    )


def this_process(nonce: str = "") -> Holder:
    """This process as a holder (pass a fresh ``nonce`` per hold: ``new_holder``)."""
    pid = os.getpid()  # after a fork the child is another holder
    host, boot_id, pid_ns, started = _identity(pid)
    return Holder(host, boot_id, pid_ns, pid, started, nonce)


def new_holder() -> Holder:
    return this_process(uuid.uuid4().hex[:8])
