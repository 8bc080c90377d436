"""An in-memory cache of a CASIA-B partition: every frame in one ``uint8 [N, 64, 44]`` array.

Training and evaluation sample from it without touching the disk again. Frames are stored cut to
the model width, so the whole training partition (670k frames) takes about 1.9 GB.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.contract import ALIGNED_WIDTH, FRAME_HEIGHT, MODEL_WIDTH
from models.silhouette import cut_to_model
from training.data.casia_b import SequenceKey, TreeProblem, find_sequences, read_sequence

_FRAME_BYTES = FRAME_HEIGHT * MODEL_WIDTH  # the smallest a stored frame can be


def _read_or_error(path: Path) -> np.ndarray | Exception:
    try:
        return read_sequence(path)
    except Exception as error:  # the caller reports it per file
        return error


def _read_ahead(paths: list[Path], workers: int) -> Iterator[np.ndarray | Exception]:
    """Read ``paths`` in order on ``workers`` threads, at most ``4 * workers`` files ahead."""
    depth = 4 * max(1, workers)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: deque[Future] = deque()
        for path in paths:
            pending.append(pool.submit(_read_or_error, path))
            if len(pending) >= depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


@dataclass
class SilhouetteCache:
    """Frames of many sequences, concatenated.

    frames:  uint8 [N, 64, 44], all sequences back to back in ``keys`` order
    keys:    one :class:`SequenceKey` per sequence, sorted
    starts:  int64 [S], first frame of each sequence in ``frames``
    lengths: int64 [S], frames per sequence (every length >= 1)
    skipped: sequences that could not be read or had too few frames, with the reason
    """

    frames: np.ndarray
    keys: list[SequenceKey]
    starts: np.ndarray
    lengths: np.ndarray
    skipped: list[TreeProblem]

    def __len__(self) -> int:
        return len(self.keys)

    def sequence(self, index: int) -> np.ndarray:
        """Frames of sequence ``index``: uint8 [T, 64, 44] (a view into ``frames``)."""
        start = self.starts[index]
        return self.frames[start : start + self.lengths[index]]

    @property
    def subjects(self) -> np.ndarray:
        """str [S]: subject id of each sequence."""
        return np.array([key.subject for key in self.keys])

    @property
    def conditions(self) -> np.ndarray:
        """str [S]: condition (``'nm-01'`` …) of each sequence."""
        return np.array([key.condition for key in self.keys])

    @property
    def views(self) -> np.ndarray:
        """str [S]: view (``'000'`` … ``'180'``) of each sequence."""
        return np.array([key.view for key in self.keys])

    @property
    def nbytes(self) -> int:
        return int(self.frames.nbytes + self.starts.nbytes + self.lengths.nbytes)

    @classmethod
    def load(
        cls,
        root: str | Path,
        subjects: Iterable[str] | None = None,
        conditions: Iterable[str] | None = None,
        min_frames: int = 1,
        progress: bool = True,
        workers: int = 4,
    ) -> SilhouetteCache:
        """Read the selected sequences of a pkl tree into memory.

        Sequences with fewer than ``min_frames`` frames, and files that cannot be read, are left
        out and listed in ``skipped``. Reading runs in ``workers`` threads (file I/O releases the
        GIL); frames are copied into one preallocated array as they arrive, in sorted key order.
        """
        listing = find_sequences(root, subjects, conditions)
        files = sorted(listing.files, key=lambda f: f.key)
        # Every stored frame takes at least 64*44 bytes, so this bounds the frame count. Pages
        # of the array that are never written are never touched, so the slack costs no memory.
        capacity = sum(f.path.stat().st_size for f in files) // _FRAME_BYTES
        frames = np.empty((capacity, FRAME_HEIGHT, MODEL_WIDTH), dtype=np.uint8)
        keys: list[SequenceKey] = []
        starts: list[int] = []
        lengths: list[int] = []
        skipped = list(listing.problems)
        filled = 0

        results = _read_ahead([f.path for f in files], workers)
        for item, result in tqdm(
            zip(files, results, strict=True),
            total=len(files),
            desc="loading",
            unit="seq",
            disable=not progress,
        ):
            if isinstance(result, Exception):
                skipped.append(TreeProblem(item.path, f"unreadable: {result}"))
                continue
            if len(result) < min_frames:
                skipped.append(TreeProblem(item.path, f"{len(result)} frames < {min_frames}"))
                continue
            cut = cut_to_model(result) if result.shape[2] == ALIGNED_WIDTH else result
            frames[filled : filled + len(cut)] = cut
            keys.append(item.key)
            starts.append(filled)
            lengths.append(len(cut))
            filled += len(cut)
        return cls(
            frames=frames[:filled],
            keys=keys,
            starts=np.asarray(starts, dtype=np.int64),
            lengths=np.asarray(lengths, dtype=np.int64),
            skipped=skipped,
        )
