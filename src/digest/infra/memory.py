"""Keep a long-running process's memory flat: cap glibc's malloc arenas (the daemon calls this)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

#: glibc's mallopt parameter number for the arena cap (malloc.h: M_ARENA_MAX).
_M_ARENA_MAX = -8
#: Arenas the daemon keeps: its job thread and the short-lived helpers share these.
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``arenas``; True when the cap was set here.

    Each thread that allocates may get an arena of its own (up to 8 per core), and the daemon
    starts new helper threads every run (parse pool, topic matcher): freed memory then stays
    fragmented across arenas and RSS climbs in steps of a few MiB for as long as it runs. A
    ``MALLOC_ARENA_MAX`` set by the operator wins. Call before threads start; a no-op off glibc.
    """
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl (Alpine) has no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if not mallopt(_M_ARENA_MAX, arenas):
        log.debug("mallopt(M_ARENA_MAX) refused")
        return False
    return True
