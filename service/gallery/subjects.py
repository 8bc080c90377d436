"""Which subject each indexed sample belongs to, and the largest subject's size, kept in
constant time per change (the search needs it to know how deep to look)."""

from __future__ import annotations

from collections import Counter


class SubjectBook:
    """sample id → subject, subject → its sample ids, and the most samples any subject has.
    Not thread-safe: its index serialises the calls."""

    def __init__(self):
        self.subject_of: dict[int, str] = {}
        self.samples_of: dict[str, set[int]] = {}
        self.most = 0  # the most samples any one subject has
        self._with_size: Counter[int] = Counter()  # samples a subject has → subjects with so many

    def __contains__(self, sample_id: int) -> bool:
        return sample_id in self.subject_of

    def __len__(self) -> int:
        return len(self.subject_of)

    @property
    def subjects(self) -> int:
        return len(self.samples_of)

    def add(self, sample_id: int, subject_id: str) -> None:
        self.subject_of[sample_id] = subject_id
        samples = self.samples_of.setdefault(subject_id, set())
        samples.add(sample_id)
        self._resized(len(samples) - 1, len(samples))

    def remove(self, sample_id: int) -> bool:
        """Forget a sample; False if it was not here."""
        subject_id = self.subject_of.pop(sample_id, None)
        if subject_id is None:
            return False
        samples = self.samples_of[subject_id]
        samples.discard(sample_id)
        self._resized(len(samples) + 1, len(samples))
        if not samples:
            del self.samples_of[subject_id]
        return True

    def _resized(self, before: int, after: int) -> None:
        """A subject went from ``before`` to ``after`` samples (one more or one fewer): ``most``
        follows in constant time, not a pass over every subject."""
        self._with_size[before] -= 1
        self._with_size[after] += 1
        if after > self.most or (before == self.most and self._with_size[before] <= 0):
            self.most = after
