"""How a process ends its runs: Ctrl-C (SIGINT) and SIGTERM (schedulers, `docker stop`,
`systemctl stop`) raise a KeyboardInterrupt (`Terminated` for SIGTERM) in the main thread, so
every run ends KILLED; and the worker id (host:pid) by which a later process tells that an
earlier one died (kill -9).

While a run is open the interrupt waits for a safe point (the end of an epoch, of the run's
body) instead of surfacing inside TensorFlow's runtime or a storage write: Python's docs advise
complex programs not to raise from signal handlers at arbitrary points.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Iterator

_pending: KeyboardInterrupt | None = None
_deferring = 0


class Terminated(KeyboardInterrupt):
    """The process received a termination signal; `signal_name` says which."""

    def __init__(self, signum: int):
        super().__init__(f"received {signal.Signals(signum).name}")
        self.signum = signum
        self.signal_name = signal.Signals(signum).name


def signal_name(error: KeyboardInterrupt) -> str:
    """The signal behind an interrupt: a plain KeyboardInterrupt is Ctrl-C's SIGINT."""
    return getattr(error, "signal_name", "SIGINT")


def exit_code(error: KeyboardInterrupt) -> int:
    """The shell's convention for a process ended by a signal: 128 + its number."""
    return 128 + getattr(error, "signum", signal.SIGINT)


def _interrupt(signum, frame):
    global _pending
    signal.signal(signum, signal.SIG_DFL)  # a second signal ends the process at once
    _pending = KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)
    if not _deferring:
        raise_pending()


def handle_signals():
    """From now on SIGINT and SIGTERM raise in the main thread (call it from there): at once,
    or inside `deferred_interrupts` at its next safe point."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)


def raise_pending():
    """A safe point: raise the interrupt of a signal that arrived inside `deferred_interrupts`.
    Only the main thread raises it (where the signal arrived); other threads go on."""
    global _pending
    if threading.current_thread() is not threading.main_thread():
        return
    error, _pending = _pending, None
    if error is not None:
        raise error


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Inside, a signal's interrupt waits for `raise_pending` (or the outermost block's end).
    In a thread other than the main one it does nothing: signals interrupt the main thread."""
    global _deferring
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring:
            raise_pending()


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def is_alive(worker: str) -> bool:
    """Whether a worker's process still runs; a process on another host (or an unknown worker)
    is assumed alive."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)  # PermissionError: it exists, under another user
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True
