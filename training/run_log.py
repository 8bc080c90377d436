"""A run's records: CSV files (always), TensorBoard (when installed), PNG curves.

train.csv: iteration, loss, triplet, ce, active, lr, frames_per_s, elapsed_s
val.csv:   iteration, NM, BG, CL (rank-1 %, the protocol's headline figures)
curves.png: loss and NM/BG/CL rank-1 against iterations
"""

from __future__ import annotations

import csv
from pathlib import Path

TRAIN_FIELDS = ("iteration", "loss", "triplet", "ce", "active", "lr", "frames_per_s", "elapsed_s")
VAL_FIELDS = ("iteration", "NM", "BG", "CL")


def _keep_rows_up_to(path: Path, fields: tuple[str, ...], iteration: int) -> None:
    """On resume, drop records written after the checkpoint we resume from."""
    if not path.exists():
        return
    with open(path, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if int(row["iteration"]) <= iteration]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fields)
        writer.writeheader()
        writer.writerows(rows)


class RunLog:
    def __init__(self, out_dir: Path, start_iteration: int = 0):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.train_csv = self.out_dir / "train.csv"
        self.val_csv = self.out_dir / "val.csv"
        for path, fields in ((self.train_csv, TRAIN_FIELDS), (self.val_csv, VAL_FIELDS)):
            _keep_rows_up_to(path, fields, start_iteration)
            if not path.exists():
                with open(path, "w", newline="") as handle:
                    csv.DictWriter(handle, fields).writeheader()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(
                str(self.out_dir / "tensorboard"), purge_step=start_iteration
            )
        except ImportError:  # tensorboard is in the train extra; CSV and PNG still work
            self.tensorboard = None

    def _append(self, path: Path, fields: tuple[str, ...], row: dict) -> None:
        with open(path, "a", newline="") as handle:
            csv.DictWriter(handle, fields).writerow({k: row[k] for k in fields})

    def train(self, row: dict) -> None:
        self._append(self.train_csv, TRAIN_FIELDS, row)
        if self.tensorboard:
            for key in ("loss", "triplet", "ce", "active", "lr", "frames_per_s"):
                self.tensorboard.add_scalar(f"train/{key}", row[key], row["iteration"])

    def validation(self, iteration: int, headline: dict[str, float]) -> None:
        self._append(self.val_csv, VAL_FIELDS, {"iteration": iteration, **headline})
        if self.tensorboard:
            for key, value in headline.items():
                self.tensorboard.add_scalar(f"val/rank1_{key}", value, iteration)
        self.plot()

    def plot(self) -> Path:
        return plot_curves(self.train_csv, self.val_csv, self.out_dir / "curves.png")

    def close(self) -> None:
        if self.tensorboard:
            self.tensorboard.close()


def _read(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]


def plot_curves(train_csv: Path, val_csv: Path, out: Path) -> Path:
    """Loss (raw and smoothed) and validation NM/BG/CL rank-1 against iterations, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    train, val = _read(train_csv), _read(val_csv)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    if train:
        its = np.array([r["iteration"] for r in train])
        for key, colour in (("loss", "C0"), ("triplet", "C1"), ("ce", "C2")):
            values = np.array([r[key] for r in train])
            left.plot(its, values, color=colour, alpha=0.25, linewidth=0.8)
            window = max(1, len(values) // 25)
            smooth = np.convolve(values, np.ones(window) / window, mode="valid")
            left.plot(its[window - 1 :], smooth, color=colour, label=key)
        left.set_yscale("log")
        left.legend()
    left.set(title="training loss", xlabel="iteration", ylabel="loss")
    left.grid(alpha=0.3)
    if val:
        its = [r["iteration"] for r in val]
        for key, marker in (("NM", "o"), ("BG", "s"), ("CL", "^")):
            right.plot(its, [r[key] for r in val], marker=marker, label=f"{key} {val[-1][key]:.1f}")
        right.legend(title="rank-1 (last)")
    right.set(title="validation rank-1 (%)", xlabel="iteration", ylim=(0, 100))
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
