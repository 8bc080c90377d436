"""Raw CASIA-B silhouette PNGs → an OpenGait pkl tree of aligned 64×64 frames.

Input layout (the CASIA-B distribution): ``RAW/<subject>/<condition>/<view>/*.png`` with files
named ``<subject>-<condition>-<view>-<frame>.png`` (``001-nm-01-090-042.png``); frames are ordered
by the trailing frame number. Each frame goes through ``models.silhouette.align_silhouette`` (the
same function the service applies to uploads); empty frames are dropped. Output:
``OUT/<subject>/<condition>/<view>/<view>.pkl`` holding ``uint8 [frames, 64, 64]``.

Sequences are processed in parallel worker processes; each output file is written atomically, so
an interrupted run leaves no half-written pkl and a re-run skips what is already done.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import re
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from models.silhouette import align_clip
from training.data.casia_b import SHORT_SEQUENCE, SequenceKey

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp"})
_FRAME_NUMBER = re.compile(r"(\d+)$")


@dataclass(frozen=True)
class RawSequence:
    key: SequenceKey
    frame_paths: tuple[Path, ...]


@dataclass(frozen=True)
class SequenceResult:
    """What pretreating one sequence did (returned from the worker process)."""

    key: SequenceKey
    frames_read: int
    frames_kept: int
    unreadable: tuple[str, ...]
    written: bool
    skipped_existing: bool = False


@dataclass
class PretreatReport:
    """Totals and the sequences worth a look; printed by ``gaitlab data pretreat``."""

    sequences_written: int = 0
    sequences_existing: int = 0
    frames_read: int = 0
    frames_kept: int = 0
    empty: list[SequenceKey] = field(default_factory=list)
    short: list[tuple[SequenceKey, int]] = field(default_factory=list)
    unreadable_frames: list[str] = field(default_factory=list)
    empty_folders: list[Path] = field(default_factory=list)


def _frame_order(path: Path) -> tuple[int, str]:
    match = _FRAME_NUMBER.search(path.stem)
    return (int(match.group(1)) if match else -1, path.name)


def find_raw_sequences(raw_root: str | Path) -> tuple[list[RawSequence], list[Path]]:
    """Sequences of a raw tree, frames in order; and the view folders that hold no image."""
    raw_root = Path(raw_root)
    if not raw_root.is_dir():
        raise FileNotFoundError(f"no raw silhouette tree at {raw_root}")
    sequences: list[RawSequence] = []
    empty_folders: list[Path] = []
    for view_dir in sorted(raw_root.glob("*/*/*")):
        if not view_dir.is_dir():
            continue
        frames = sorted(
            (p for p in view_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
            key=_frame_order,
        )
        subject, condition, view = view_dir.relative_to(raw_root).parts
        if frames:
            sequences.append(RawSequence(SequenceKey(subject, condition, view), tuple(frames)))
        else:
            empty_folders.append(view_dir)
    return sequences, empty_folders


def output_path(out_root: str | Path, key: SequenceKey) -> Path:
    """Where a sequence goes in a pkl tree."""
    return Path(out_root) / key.subject / key.condition / key.view / f"{key.view}.pkl"


def _write_atomically(path: Path, frames: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as handle:
        pickle.dump(frames, handle, protocol=4)
    os.replace(partial, path)


def pretreat_sequence(
    sequence: RawSequence, out_root: str | Path, overwrite: bool
) -> SequenceResult:
    """Align one raw sequence and write its pkl (nothing is written when no frame is usable)."""
    target = output_path(out_root, sequence.key)
    if target.exists() and not overwrite:
        return SequenceResult(sequence.key, 0, 0, (), written=False, skipped_existing=True)
    masks, unreadable = [], []
    for path in sequence.frame_paths:
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            unreadable.append(str(path))
        else:
            masks.append(mask)
    aligned = align_clip(masks)  # [n, 64, 64] uint8
    if len(aligned):
        _write_atomically(target, aligned)
    return SequenceResult(
        sequence.key,
        frames_read=len(masks),
        frames_kept=len(aligned),
        unreadable=tuple(unreadable),
        written=bool(len(aligned)),
    )


def _init_worker() -> None:
    cv2.setNumThreads(1)  # parallelism comes from the processes


def pretreat_tree(
    raw_root: str | Path,
    out_root: str | Path,
    workers: int | None = None,
    min_frames: int = SHORT_SEQUENCE,
    overwrite: bool = False,
    progress: bool = True,
) -> PretreatReport:
    """Pretreat every sequence of ``raw_root`` into ``out_root`` on ``workers`` processes."""
    sequences, empty_folders = find_raw_sequences(raw_root)
    report = PretreatReport(empty_folders=empty_folders)
    workers = workers or os.cpu_count() or 1
    # Spawned, not forked: a fork after OpenCV's thread pool has started can deadlock the child.
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=spawn, initializer=_init_worker) as pool:
        futures = [pool.submit(pretreat_sequence, s, out_root, overwrite) for s in sequences]
        for future in tqdm(
            as_completed(futures),
            total=len(futures),
            desc="pretreat",
            unit="seq",
            disable=not progress,
        ):
            result = future.result()
            if result.skipped_existing:
                report.sequences_existing += 1
                continue
            report.frames_read += result.frames_read
            report.frames_kept += result.frames_kept
            report.unreadable_frames.extend(result.unreadable)
            if result.written:
                report.sequences_written += 1
                if result.frames_kept < min_frames:
                    report.short.append((result.key, result.frames_kept))
            else:
                report.empty.append(result.key)
    report.empty.sort()
    report.short.sort()
    report.unreadable_frames.sort()
    return report
