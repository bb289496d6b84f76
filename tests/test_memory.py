"""The daemon caps glibc's malloc arenas, so helper threads started every run share two."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from digest.infra.memory import limit_malloc_arenas

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="glibc malloc arenas are a Linux matter"
)

# Eight threads alive at once each allocate, then glibc reports its arenas (malloc_info XML).
_ARENAS_SEEN = """
import ctypes, sys, threading
from digest.infra.memory import limit_malloc_arenas
if sys.argv[1] == "cap":
    limit_malloc_arenas()
barrier = threading.Barrier(8)
def work():
    barrier.wait()
    keep = [bytearray(1000) for _ in range(100)]
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
fp = libc.fopen(sys.argv[2].encode(), b"w")
libc.malloc_info(0, fp)
libc.fclose(fp)
"""


def arenas_used(tmp_path: Path, mode: str) -> int:
    out = tmp_path / f"{mode}.xml"
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    subprocess.run([sys.executable, "-c", _ARENAS_SEEN, mode, str(out)], check=True, env=env)
    return out.read_text().count("<heap nr=")


def test_threads_share_two_malloc_arenas_once_capped(tmp_path: Path) -> None:
    assert arenas_used(tmp_path, "default") > 2
    assert arenas_used(tmp_path, "cap") <= 2


def test_an_operators_malloc_arena_max_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False
