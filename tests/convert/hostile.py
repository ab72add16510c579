"""Helpers for the tests of hostile checkpoint files (imported by the tests, not collected).

`fails_fast` expects a ValueError quickly and without a large allocation: while it is
active the process may map at most `memory` more bytes (RLIMIT_AS), so a reader that
trusts a size a small file declares gets a MemoryError, failing the test instead of
exhausting the machine, and a Python-level loop that runs long is interrupted.
"""
import contextlib
import signal
import threading
import time

import pytest

try:
    import resource
except ImportError:  # not on Windows: run without the memory limit
    resource = None


def _mapped_bytes():
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@contextlib.contextmanager
def _memory_limit(memory):
    mapped = _mapped_bytes() if resource is not None else None
    if mapped is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = mapped + memory
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class TookTooLong(Exception):
    """Raised into a test whose reader loops past the alarm."""


@contextlib.contextmanager
def _alarm(seconds):
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal,
                                                                                  "setitimer"):
        yield
        return

    def interrupt(signum, frame):
        raise TookTooLong(f"still running after {seconds} s of CPU")

    previous = signal.signal(signal.SIGPROF, interrupt)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


@contextlib.contextmanager
def bounded(seconds=1.0, memory=1 << 30):
    """The body must finish within `seconds` of this process's CPU time (interrupted
    after 10x) and `memory` bytes. CPU time, not wall time: the suite runs beside other
    test processes, whose share of the cores is not the reader's."""
    start = time.process_time()
    with _alarm(max(10 * seconds, 5)), _memory_limit(memory):
        yield
    elapsed = time.process_time() - start
    assert elapsed < seconds, f"took {elapsed:.2f} s of CPU"


@contextlib.contextmanager
def fails_fast(match, seconds=1.0, memory=1 << 30):
    """Expect a ValueError matching `match` within `seconds`, allocating < `memory` bytes."""
    with bounded(seconds, memory), pytest.raises(ValueError, match=match) as raised:
        yield raised
    for blow_up in ("MemoryError", "RecursionError", "OverflowError"):  # wrapped, not prevented
        assert blow_up not in str(raised.value), raised.value


def mentions(*parts):
    """A regex matching a message that contains every one of `parts`, in any order."""
    import re

    return "(?s)^" + "".join(f"(?=.*{re.escape(str(part))})" for part in parts)
