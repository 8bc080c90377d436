"""A small CASIA-B-shaped pkl tree drawn in code, so the training, export and evaluation tests
run on a fresh clone without the real data (OpenGait's layout, 64×64 uint8 frames, pickled as
the real files are).

Each subject is a walker of its own build, stride and gait phase (``models.reference.walker``);
a view changes how wide the figure looks and how far its limbs swing, a bag adds a blob at the
hip, a coat widens the torso. Learnable, if nothing like real people: it tests the code, not
the accuracy.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from models.reference import walker

CONDITIONS = (
    "nm-01",
    "nm-02",
    "nm-03",
    "nm-04",
    "nm-05",
    "nm-06",
    "bg-01",
    "bg-02",
    "cl-01",
    "cl-02",
)
VIEWS = ("000", "090", "180")
FRAMES = 30
LONG = ("065", "nm-01", "090", 130)  # one sequence long enough for the export's parity check


def _sequence(subject: int, condition: str, view: str, frames: int) -> np.ndarray:
    """uint8 [frames, 64, 64]: the walker at 64×44, padded with 10 empty columns a side."""
    rng = np.random.default_rng([subject, CONDITIONS.index(condition), VIEWS.index(view)])
    angle = np.radians(int(view))
    build = 0.8 + 0.08 * (subject % 6) + (0.25 if condition.startswith("cl") else 0.0)
    stride = (0.25 + 0.05 * (subject % 5)) * (0.4 + 0.6 * abs(np.sin(angle)) + 0.1)
    phase = rng.uniform(0, 2 * np.pi)
    facing = 1 if int(view) < 90 else -1
    clip = walker(frames, phase, stride, build, facing)
    if condition.startswith("bg"):
        clip[:, 30:40, 26:34] = 255  # a bag at the hip
    return np.pad(clip, ((0, 0), (0, 0), (10, 10)))


def write_synthetic_tree(root: Path, subjects: tuple[str, ...]) -> Path:
    """``root/<subject>/<condition>/<view>/<view>.pkl`` for every condition and view."""
    for subject in subjects:
        for condition in CONDITIONS:
            for view in VIEWS:
                frames = LONG[3] if (subject, condition, view) == LONG[:3] else FRAMES
                folder = root / subject / condition / view
                folder.mkdir(parents=True, exist_ok=True)
                clip = _sequence(int(subject), condition, view, frames)
                (folder / f"{view}.pkl").write_bytes(pickle.dumps(clip))
    return root
