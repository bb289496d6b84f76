"""SIGTERM / SIGINT set a stop flag (the run finishes its unit of work, then returns);
SIGHUP, when asked for, sets a reload flag. Used by the CLI commands and the daemon."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["stop_on_signals"]


@contextmanager
def stop_on_signals(
    stop: threading.Event,
    *,
    reload: threading.Event | None = None,
    announce: Callable[[str], None] | None = None,
    second_interrupts: bool = False,
) -> Iterator[threading.Event]:
    """Route the signals to ``stop`` (and SIGHUP to ``reload``) for the block; yields ``stop``.

    ``announce`` gets the signal's name; with ``second_interrupts`` a second SIGTERM/SIGINT
    raises KeyboardInterrupt (an operator pressing Ctrl-C twice really wants out). Signal
    handlers belong to the main thread: elsewhere the block runs without them.
    """
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        if second_interrupts and stop.is_set():
            raise KeyboardInterrupt
        if announce is not None:
            announce(signal.Signals(signum).name)
        stop.set()

    def on_hup(_signum: int, _frame: FrameType | None) -> None:
        if reload is not None:
            reload.set()

    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, on_stop),
        signal.SIGINT: signal.signal(signal.SIGINT, on_stop),
    }
    if reload is not None:
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hup)
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
