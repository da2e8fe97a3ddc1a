"""Ctrl-C and SIGTERM stop a command at a safe point, with one line saying how to resume.

Why: the default SIGINT handling raises KeyboardInterrupt wherever the interpreter happens to be and prints a
long traceback; schedulers send SIGTERM before killing a job. Here both raise `RunInterrupted` at once, except
inside `safe_section()` (a checkpoint or a metrics line being written), where the stop waits until the section
ends, so what is on disk is always a state the run can resume from. The CLI turns it into one line and exit
code 128 + signal (130 for SIGINT, 143 for SIGTERM), as shells report a process killed by that signal.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(Exception):
    """A stop asked for by SIGINT or SIGTERM, raised at a safe point."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _State:
    depth = 0  # nesting of safe sections
    pending: int | None = None  # a signal received inside one


def _handler(signum: int, frame: FrameType | None) -> None:
    if _State.depth > 0:
        _State.pending = signum
        return
    raise RunInterrupted(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Installs the handlers for the duration of a command (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _State.pending = None


@contextlib.contextmanager
def safe_section() -> Iterator[None]:
    """A block a signal does not interrupt: a stop asked for inside it is raised when it ends."""
    _State.depth += 1
    try:
        yield
    finally:
        _State.depth -= 1
        if _State.depth == 0 and _State.pending is not None:
            signum, _State.pending = _State.pending, None
            raise RunInterrupted(signum)
