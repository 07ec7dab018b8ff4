"""How a process ends its runs: SIGTERM (schedulers, `docker stop`, `systemctl stop`) is raised
in the main thread as `Terminated`, a KeyboardInterrupt, so every run ends KILLED as on Ctrl-C;
and the worker id (host:pid) by which a later process tells that an earlier one died (kill -9).
"""

from __future__ import annotations

import os
import signal
import socket


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


def _raise_terminated(signum, frame):
    signal.signal(signum, signal.SIG_DFL)  # a second signal ends the process at once
    raise Terminated(signum)


def raise_on_sigterm():
    """From now on SIGTERM raises Terminated in the main thread (call it from there)."""
    signal.signal(signal.SIGTERM, _raise_terminated)


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
