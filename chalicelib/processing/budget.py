"""A time and memory budget for processing one dump.

A dump over its budget raises BudgetExceeded: the processor stores it as an error
(ERROR_TIME_BUDGET / ERROR_MEMORY_BUDGET) so it is marked once, not retried forever.
Time is a real-time interval timer (main thread only: elsewhere the time budget is
not enforced); memory is the address-space limit, lowered for the call and restored.
"""

from __future__ import annotations

import contextlib
import resource
import signal
import threading
from collections.abc import Iterator


class BudgetExceeded(BaseException):
    """Not an Exception: the broad handlers that keep a walk going past one broken
    stream or symbol file must not swallow the budget."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "TIME_BUDGET" or "MEMORY_BUDGET"


def _address_space_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


@contextlib.contextmanager
def limited(seconds: float, megabytes: float) -> Iterator[None]:
    """Run the body within `seconds` and `megabytes` more address space (0: no limit)."""
    on_main = threading.current_thread() is threading.main_thread()
    previous_handler = None
    if seconds > 0 and on_main:
        def expire(signum: int, frame: object) -> None:
            raise BudgetExceeded("TIME_BUDGET", f"processing took over {seconds:g} s")

        previous_handler = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit_set = False
    base = _address_space_bytes()
    if megabytes > 0 and base:
        wanted = base + int(megabytes * 1024 * 1024)
        if hard == resource.RLIM_INFINITY or wanted <= hard:
            resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))
            limit_set = True
    try:
        yield
    except MemoryError:
        raise BudgetExceeded(
            "MEMORY_BUDGET", f"processing needed over {megabytes:g} MB"
        ) from None
    finally:
        if limit_set:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        if previous_handler is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous_handler)
