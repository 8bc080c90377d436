"""Who is enrolled, at how many views: what the identification decision needs to know about the
gallery (``models.identification``). Kept beside the index, updated with it."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable

from models.identification import composition_of, effective_views


class GalleryComposition:
    """Each subject's samples' views, and the gallery's ``{views: subjects}``. Thread-safe."""

    def __init__(self, samples: Iterable[tuple[int, str, str | None]] = ()):
        self._lock = threading.Lock()
        self._sample: dict[int, tuple[str, str | None]] = {}
        self._views: dict[str, Counter] = {}
        self._cached: dict[int, int] | None = None
        self.add(samples)

    def add(self, samples: Iterable[tuple[int, str, str | None]]) -> None:
        """Samples as (sample id, subject id, view or None); one already known is ignored."""
        with self._lock:
            for sample_id, subject_id, view in samples:
                if sample_id in self._sample:
                    continue
                self._sample[sample_id] = (subject_id, view)
                self._views.setdefault(subject_id, Counter())[view] += 1
            self._cached = None

    def remove(self, sample_ids: Iterable[int]) -> None:
        with self._lock:
            for sample_id in sample_ids:
                found = self._sample.pop(int(sample_id), None)
                if found is None:
                    continue
                subject_id, view = found
                views = self._views[subject_id]
                views[view] -= 1
                if views[view] <= 0:
                    del views[view]
                if not views:
                    del self._views[subject_id]
            self._cached = None

    def views_of(self, subject_id: str) -> int:
        """How many views the decision counts for this subject (1 if unknown here)."""
        with self._lock:
            views = self._views.get(subject_id)
            return self._count(views) if views else 1

    @staticmethod
    def _count(views: Counter) -> int:
        unknown = views.get(None, 0)
        return effective_views([v for v in views if v is not None] + [None] * unknown)

    @property
    def subjects(self) -> int:
        with self._lock:
            return len(self._views)

    def composition(self) -> dict[int, int]:
        """``{views: subjects}`` of the whole gallery."""
        with self._lock:
            if self._cached is None:
                self._cached = composition_of(self._count(v) for v in self._views.values())
            return dict(self._cached)
