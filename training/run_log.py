"""A run's records: CSV files (always), TensorBoard (when installed), PNG curves.

train.csv: iteration, loss, each loss term and its stats (e.g. triplet, triplet_active,
           cross_entropy), lr, frames_per_s, elapsed_s (seconds spent in training steps)
val.csv:   iteration, NM, BG, CL (rank-1 %, the protocol's headline figures), max_frames (the
           frame cap of that validation; empty: every frame, as the protocol asks)
curves.png: loss and NM/BG/CL rank-1 against iterations
"""

from __future__ import annotations

import csv
from pathlib import Path

VAL_FIELDS = ("iteration", "NM", "BG", "CL", "max_frames")


def train_fields(loss_fields: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    return ("iteration", "loss", *loss_fields, "lr", "frames_per_s", "elapsed_s")


def _keep_rows_up_to(path: Path, fields: tuple[str, ...], iteration: int) -> None:
    """On resume, drop records written after the checkpoint we resume from."""
    if not path.exists():
        return
    with open(path, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if int(row["iteration"]) <= iteration]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fields, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


class RunLog:
    """A run's CSV records; ``loss_terms`` are the loss names drawn beside the total."""

    def __init__(
        self,
        out_dir: Path,
        start_iteration: int = 0,
        loss_fields: tuple[str, ...] = (),
        loss_terms: tuple[str, ...] = (),
    ):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.train_csv = self.out_dir / "train.csv"
        self.val_csv = self.out_dir / "val.csv"
        self.train_fields = train_fields(loss_fields)
        self.loss_terms = tuple(loss_terms)
        for path, fields in ((self.train_csv, self.train_fields), (self.val_csv, VAL_FIELDS)):
            _keep_rows_up_to(path, fields, start_iteration)
            if not path.exists():
                with open(path, "w", newline="") as handle:
                    csv.DictWriter(handle, fields).writeheader()
        try:
            from torch.utils.tensorboard import SummaryWriter

            # keep the resumed-from iteration's events, as the CSVs keep its rows
            self.tensorboard = SummaryWriter(
                str(self.out_dir / "tensorboard"), purge_step=start_iteration + 1
            )
        except ImportError:  # tensorboard is in the train extra; CSV and PNG still work
            self.tensorboard = None

    def _append(self, path: Path, fields: tuple[str, ...], row: dict) -> None:
        with open(path, "a", newline="") as handle:
            csv.DictWriter(handle, fields).writerow({k: row.get(k, "") for k in fields})

    def train(self, row: dict) -> None:
        self._append(self.train_csv, self.train_fields, row)
        if self.tensorboard:
            for key in self.train_fields[1:-1]:
                self.tensorboard.add_scalar(f"train/{key}", row[key], row["iteration"])

    def validation(
        self, iteration: int, headline: dict[str, float], max_frames: int | None = None
    ) -> None:
        row = {"iteration": iteration, **headline, "max_frames": max_frames or ""}
        self._append(self.val_csv, VAL_FIELDS, row)
        if self.tensorboard:
            for key, value in headline.items():
                self.tensorboard.add_scalar(f"val/rank1_{key}", value, iteration)
        self.plot()

    def validations_missing(self, iteration: int, caps: list[int | None]) -> list[int | None]:
        """Of the validations ``caps`` due at ``iteration`` (frame caps, None: every frame),
        those val.csv lacks."""
        done = {
            int(row["max_frames"]) if "max_frames" in row else None
            for row in read_records(self.val_csv)
            if int(row["iteration"]) == iteration
        }
        return [cap for cap in caps if cap not in done]

    def plot(self) -> Path:
        return plot_curves(
            self.train_csv, self.val_csv, self.out_dir / "curves.png", self.loss_terms
        )

    def close(self) -> None:
        if self.tensorboard:
            self.tensorboard.close()


def read_records(path: Path) -> list[dict[str, float]]:
    """A run's CSV as rows of floats (empty cells left out); ``[]`` when there is no file.

    A row still being written (a report read while the run goes on) is left out."""
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        {k: float(v) for k, v in row.items() if v != ""}
        for row in rows
        if None not in row.values() and None not in row and row.get("iteration")
    ]


def plot_curves(
    train_csv: Path, val_csv: Path, out: Path, loss_terms: tuple[str, ...] = ()
) -> Path:
    """Loss and its terms (raw and smoothed) and validation NM/BG/CL rank-1 against iterations,
    one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    train, val = read_records(train_csv), read_records(val_csv)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    if train:
        its = np.array([r["iteration"] for r in train])
        for index, key in enumerate(("loss", *loss_terms)):
            colour = f"C{index}"
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
