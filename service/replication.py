"""Keeping a replica's in-memory index current from the store's change log.

Replicas share one database; each holds its own index, built at start. A ``ChangeFollower``
thread then applies every change logged after the position the index was built at: woken by
the database (LISTEN/NOTIFY on PostgreSQL) or, failing that, every ``poll_s`` seconds. Applying
is idempotent (an index add skips samples it has, a remove of a missing sample does nothing),
so a replica's own writes — already in its index when they are answered — and a change seen
twice do no harm. ``lag_s`` is the time from a change's commit to its application here.
The log keeps a week of changes (``GalleryStore.change_retention_s``); a replica that falls
further behind than that rebuilds its index from the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from models.engine import EmbeddingEngine
from service.gallery.records import Change, StoreUnavailableError
from service.recognition import Recognizer

log = logging.getLogger("gaitlab.replication")


class ChangeFollower:
    def __init__(
        self,
        recognizer: Recognizer,
        position: int,
        load: Callable[[str], EmbeddingEngine],
        poll_s: float = 1.0,
    ):
        """``position``: the last change the recognizer's index already reflects (read before
        the index was built, so nothing between is missed); ``load(version)``: the engine of a
        model another replica activated (from this replica's files or the store)."""
        self.recognizer = recognizer
        self.load = load
        self.position = position
        self.poll_s = poll_s
        self.lag_s: float | None = None  # of the last change applied
        self.applied = 0
        self.rebuilds = 0  # times the log had been pruned past this follower's position
        self.failing_since: float | None = None  # set while catching up keeps failing
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def healthy(self) -> bool:
        return self.failing_since is None

    def catch_up(self) -> int:
        """Apply every change logged since ``position``, in order; returns how many. A change
        that cannot be applied stops here (and is tried again): none is ever skipped. A follower
        so far behind that the log no longer holds what it missed rebuilds its index instead."""
        store = self.recognizer.store
        count = 0
        with self._lock:
            try:
                if store.first_change_position() > self.position + 1:
                    self._rebuild()
                while changes := store.changes_since(self.position):
                    for change in changes:
                        self._apply(change)
                        self.position = change.id
                        self.lag_s = max(0.0, time.time() - change.at)
                        count += 1
            except Exception:
                if self.failing_since is None:
                    self.failing_since = time.time()
                raise
            finally:
                self.applied += count
            self.failing_since = None
        return count

    def _rebuild(self) -> None:
        """Changes after ``position`` may have been pruned: take the store's state as it is now
        (its active model, every sample's embedding) and follow the log from there."""
        store = self.recognizer.store
        position = store.change_position()  # before the build: nothing after it is missed
        version = store.active_model_version() or self.recognizer.active.version
        engine = self.recognizer.active.engine
        if version != engine.version:
            engine = self.load(version)
        log.warning(
            "the change log no longer holds every change since %d: rebuilding the index",
            self.position,
        )
        self.recognizer.switch(engine, rebuild=True)
        self.position = position
        self.rebuilds += 1

    def lag_now(self) -> float | None:
        """The lag to report: of the last change applied, or how long catching up has failed."""
        if self.failing_since is not None:
            return time.time() - self.failing_since
        return self.lag_s

    def _apply(self, change: Change) -> None:
        if change.kind == "enroll":
            self.recognizer.apply_enrolled(change.sample_ids, change.model_version)
        elif change.kind == "delete":
            self.recognizer.apply_deleted(change.sample_ids)
        elif change.kind == "activate":
            if change.model_version != self.recognizer.active.version:
                self.recognizer.switch(self.load(change.model_version))
        else:  # from a newer release: skipping it could miss an activation
            raise RuntimeError(f"change {change.id} is of an unknown kind {change.kind!r}")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="change-follower", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        store = self.recognizer.store
        paused = False  # by an outage of the store: said once, not at every retry
        while not self._stop.is_set():
            try:
                self.catch_up()
                if paused:
                    log.info("following the change log again", extra={"position": self.position})
                    paused = False
                store.wait_for_change(self.poll_s)
            except StoreUnavailableError as error:  # keep serving; retry (refused at once
                if not paused:  # while the store is down) as often as the store is checked
                    log.warning("following the change log paused", extra={"error": error.detail})
                    paused = True
                self._stop.wait(min(self.poll_s, store.options.check_s))
            except Exception:
                log.exception("following the change log failed; retrying")
                self._stop.wait(self.poll_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.poll_s + 5)
