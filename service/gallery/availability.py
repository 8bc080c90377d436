"""Whether the gallery store can be used now: a state kept current by a background check, so that
no request ever waits to learn it.

::

    up ──(a request loses its connection, or a check fails)──▶ down
    down ──(a check reaches the store again; the store reconnects afresh)──▶ up

``/readyz`` reads the state. A store that fails fast (PostgreSQL: a server that can go away)
refuses a request at once while it is down, instead of letting each request wait on the
connection pool; the check, on a thread and a connection of its own, brings it back. The check
runs every ``check_s`` seconds, and at once when a request has just found the store down.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from service.gallery.records import StoreUnavailableError

log = logging.getLogger("gaitlab.store")


@dataclass(frozen=True)
class StoreOptions:
    """How long the store may make a request wait, and how often it is checked."""

    timeout_s: float = 2.0
    """Longest wait for the store in one request: for a database connection from the pool, for
    PostgreSQL's write lock, for a SQLite file another process has locked, for this process's
    own write lock."""
    check_s: float = 0.5
    """Interval of the background check, while the store is up and while it is down."""

    @property
    def retry_after_s(self) -> int:
        """What a refusal tells the client to wait: about one check."""
        return max(1, math.ceil(self.check_s))

    @property
    def stale_after_s(self) -> float:
        """A state older than this is not trusted (a check that hangs says nothing)."""
        return 2 * self.check_s + self.timeout_s + 1.0


class StoreStatus:
    """The last known state of a store: up, or down since when and why. Thread-safe."""

    def __init__(self, options: StoreOptions, name: str = "the gallery store"):
        self.options, self.name = options, name
        self._lock = threading.Lock()
        self._down_since: float | None = None  # time.monotonic()
        self.reason: str | None = None
        self.checked_at = time.monotonic()

    @property
    def up(self) -> bool:
        """Up at the last check (or request), and that check is recent."""
        fresh = time.monotonic() - self.checked_at < self.options.stale_after_s
        return self._down_since is None and fresh

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def mark_down(self, reason: str) -> None:
        with self._lock:
            self.checked_at = time.monotonic()
            self.reason = reason
            if self._down_since is None:
                self._down_since = self.checked_at
                log.warning("gallery store unavailable", extra={"reason": reason})

    def mark_up(self) -> None:
        with self._lock:
            self.checked_at = time.monotonic()
            if self._down_since is not None:
                seconds = round(self.checked_at - self._down_since, 3)
                log.info("gallery store available again", extra={"down_s": seconds})
            self._down_since, self.reason = None, None

    def refuse_if_down(self) -> None:
        """Fail fast: ``StoreUnavailableError`` at once while the store is known to be down."""
        since = self._down_since
        if since is not None:
            raise StoreUnavailableError(
                f"{self.name} has been unavailable for {time.monotonic() - since:.0f} s "
                f"({self.reason}); retry after {self.options.retry_after_s} s",
                self.options.retry_after_s,
            )


class StoreWatch:
    """Runs ``check`` (which records what it finds and never raises) every ``interval_s``
    seconds on a daemon thread, or sooner when woken."""

    def __init__(self, check: Callable[[], None], interval_s: float):
        self.check, self.interval_s = check, interval_s
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="store-check", daemon=True)

    def start(self) -> StoreWatch:
        self._thread.start()
        return self

    def wake(self) -> None:
        """Check now (a request has just found the store down)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if not self._stopped:
                self.check()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
