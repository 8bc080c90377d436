"""A tiny hand-checkable CASIA-B evaluation shared by the protocol and report tests."""

from __future__ import annotations

import numpy as np
import pytest

# (subject, condition, view, 2-d embedding with one part). Two subjects, two views (000, 018).
# The distances behind every expected figure are worked out in test_protocol.py.
HAND_ROWS = [
    ("001", "nm-01", "000", (1.0, 0.0)),  # gallery
    ("002", "nm-01", "000", (0.0, 1.0)),
    ("001", "nm-01", "018", (2.0, 0.0)),
    ("002", "nm-01", "018", (9.0, 3.0)),
    ("001", "nm-05", "000", (10.0, 0.0)),  # NM probes
    ("002", "nm-05", "000", (0.0, 2.0)),
    ("001", "nm-05", "018", (1.0, 0.1)),
    ("002", "nm-05", "018", (0.9, 0.1)),
    ("001", "bg-01", "000", (0.0, 3.0)),  # the only BG probe; no CL probe at all
]


@pytest.fixture
def hand_example() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(feats [9, 2, 1], subjects, conditions, views) of ``HAND_ROWS``."""
    subjects, conditions, views, vectors = zip(*HAND_ROWS, strict=True)
    feats = np.array(vectors, dtype=np.float64)[:, :, None]
    return feats, np.array(subjects), np.array(conditions), np.array(views)
