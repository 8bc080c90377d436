"""``gaitlab experiment report DIR``: what a campaign has measured so far, as pictures and tables.

Written into DIR:
- ``<comparison>.png`` for each comparison, in the notebooks' style: left, training loss against
  iterations; right, validation NM/BG/CL rank-1 against iterations, one colour per run, NM/BG/CL
  as line styles;
- ``report.md``: per run, best and final NM/BG/CL, the iterations and training time it took to
  reach 95 % of its final NM, and seconds per iteration;
- ``report.json``: the same figures and every curve.
Works on a campaign still running: it draws what exists and marks unfinished runs.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from training.data.subjects import parse_subjects
from training.experiment.runner import EXPERIMENT_RECORD, is_finished
from training.run_log import read_records

CONDITIONS = ("NM", "BG", "CL")
LINE_STYLES = {"NM": "-", "BG": "--", "CL": ":"}
REACH = 0.95  # "reaching" NM: 95 % of the run's final NM


@dataclass
class RunSummary:
    name: str
    overrides: str
    finished: bool
    iterations: int  # of the schedule
    iterations_done: int
    validation: str  # the validation subjects, e.g. "051-074 (24 subjects)"
    seconds_per_iteration: float | None
    training_seconds: float = 0.0  # in training steps so far
    threads: int | None = None  # torch CPU threads of the run (None: torch's choice)
    best: dict[str, float] = field(default_factory=dict)
    final: dict[str, float] = field(default_factory=dict)
    final_all_frames: bool = False  # the final point used every frame (the protocol)
    reach_nm_iteration: int | None = None
    reach_nm_seconds: float | None = None
    curves: dict = field(default_factory=dict)


def _flatten(overrides: dict, prefix: str = "") -> list[str]:
    items = []
    for key, value in overrides.items():
        if isinstance(value, dict):
            items += _flatten(value, f"{prefix}{key}.")
        else:
            items.append(f"{prefix}{key}={value}")
    return items


def _validation_label(subjects: str | None) -> str:
    if not subjects:
        return "none"
    return f"{subjects} ({len(parse_subjects(subjects))} subjects)"


def summarise_run(name: str, run_dir: Path, config: dict, overrides: dict) -> RunSummary:
    train = read_records(run_dir / "train.csv")
    val = read_records(run_dir / "val.csv")
    done = int(train[-1]["iteration"]) if train else 0
    summary = RunSummary(
        name=name,
        overrides=", ".join(_flatten(overrides)) or "(base)",
        finished=is_finished(run_dir),
        iterations=int(config["run"]["iterations"]),
        iterations_done=done,
        validation=_validation_label(config["data"].get("val_subjects")),
        seconds_per_iteration=round(train[-1]["elapsed_s"] / done, 4) if done else None,
        training_seconds=round(train[-1]["elapsed_s"], 1) if done else 0.0,
        threads=config["run"].get("threads"),
    )
    # every logged column (loss terms, lr, speed), the drawn ones even before the first row
    drawn = ["iteration", "loss", "elapsed_s"]
    columns = list(dict.fromkeys([*drawn, *(key for row in train for key in row)]))
    summary.curves = {
        "train": {
            key: [int(r[key]) if key == "iteration" else r.get(key) for r in train]
            for key in columns
        },
        "val": {
            "iteration": [int(r["iteration"]) for r in val],
            **{c: [r[c] for r in val] for c in CONDITIONS},
            "max_frames": [int(r["max_frames"]) if "max_frames" in r else None for r in val],
        },
    }
    # the curve: points of one kind (frame-capped when the run caps); the final point: all frames
    capped = [r for r in val if "max_frames" in r]
    full = [r for r in val if "max_frames" not in r]
    curve = capped or full
    if curve:
        summary.best = {c: max(r[c] for r in curve) for c in CONDITIONS}
        last = full[-1] if full and full[-1]["iteration"] >= curve[-1]["iteration"] else curve[-1]
        summary.final = {c: last[c] for c in CONDITIONS}
        summary.final_all_frames = "max_frames" not in last
        if summary.finished:  # a run still going has no last point to measure against yet
            target = REACH * curve[-1]["NM"]  # like for like: the curve's own last point
            reached = int(next(r for r in curve if r["NM"] >= target)["iteration"])
            summary.reach_nm_iteration = reached
            # training time at that iteration, between the logged rows around it
            logged = [(0.0, 0.0)] + [(r["iteration"], r["elapsed_s"]) for r in train]
            its, seconds = zip(*logged, strict=True)
            summary.reach_nm_seconds = round(float(np.interp(reached, its, seconds)), 1)
    return summary


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    window = max(1, min(window, len(values)))
    return np.convolve(values, np.ones(window) / window, mode="valid")


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "comparison"


def plot_comparison(title: str, runs: list[RunSummary], out: Path) -> Path:
    """Left: training loss (smoothed) per run; right: NM/BG/CL rank-1 per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    for index, run in enumerate(runs):
        colour = f"C{index % 10}"
        its = np.array(run.curves["train"]["iteration"])
        loss = np.array(run.curves["train"]["loss"])
        if len(loss):
            window = max(1, len(loss) // 30)
            left.plot(its, loss, color=colour, alpha=0.15, linewidth=0.7)
            left.plot(its[window - 1 :], _smooth(loss, window), color=colour, label=run.name)
        val = run.curves["val"]
        capped = [i for i, cap in enumerate(val["max_frames"]) if cap is not None]
        full = [i for i, cap in enumerate(val["max_frames"]) if cap is None]
        line = capped or full
        for condition in CONDITIONS:
            right.plot(
                [val["iteration"][i] for i in line],
                [val[condition][i] for i in line],
                color=colour,
                linestyle=LINE_STYLES[condition],
                marker="o",
                markersize=3,
            )
            if capped and full:  # the final all-frames figures, as stars
                right.plot(
                    [val["iteration"][i] for i in full],
                    [val[condition][i] for i in full],
                    color=colour,
                    linestyle="none",
                    marker="*",
                    markersize=9,
                )
    left.set(title="training loss", xlabel="iteration", ylabel="loss (smoothed)", yscale="log")
    left.grid(alpha=0.3)
    if left.get_legend_handles_labels()[0]:
        left.legend(fontsize=8)
    validation = sorted({run.validation for run in runs})
    right.set(
        title=f"validation rank-1 (%), {'; '.join(validation)}",
        xlabel="iteration",
        ylim=(0, 100),
    )
    right.grid(alpha=0.3)
    handles = [Line2D([], [], color=f"C{i % 10}", label=run.name) for i, run in enumerate(runs)]
    handles += [Line2D([], [], color="grey", linestyle=LINE_STYLES[c], label=c) for c in CONDITIONS]
    star = Line2D([], [], color="grey", linestyle="none", marker="*", label="all frames")
    handles.append(star)
    right.legend(handles=handles, fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _figures(values: dict[str, float]) -> str:
    return " / ".join(f"{values[c]:.1f}" for c in CONDITIONS) if values else "–"


def markdown_table(runs: list[RunSummary]) -> str:
    lines = [
        "| run | settings | status | best NM / BG / CL (curve) | final NM / BG / CL "
        "| 95 % of the curve's last NM: iteration, training time | s/it |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for run in runs:
        status = "finished" if run.finished else f"at {run.iterations_done} of {run.iterations}"
        final = _figures(run.final)
        if run.final and not run.final_all_frames:
            final += " (frame-capped)"
        reach = (
            f"{run.reach_nm_iteration}, {run.reach_nm_seconds / 60:.1f} min"
            if run.reach_nm_iteration is not None and run.reach_nm_seconds is not None
            else "–"
        )
        per_it = f"{run.seconds_per_iteration:.2f}" if run.seconds_per_iteration else "–"
        lines.append(
            f"| {run.name} | {run.overrides} | {status} | {_figures(run.best)} | {final} "
            f"| {reach} | {per_it} |"
        )
    return "\n".join(lines)


def _time_spent(runs: list[RunSummary]) -> str:
    """Training time so far, and the CPU time it stands for (threads × time: an upper bound)."""
    hours = sum(run.training_seconds for run in runs) / 3600
    text = f"Training steps so far: {hours:.1f} h"
    if all(run.threads for run in runs):
        cpu = sum(run.training_seconds * run.threads for run in runs) / 3600
        threads = "/".join(sorted({str(run.threads) for run in runs}))
        text += f", {cpu:.1f} CPU-hours at most (threads per run: {threads})"
    return text + "."


def build_report(out_dir: str | Path) -> Path:
    """Write the figures, ``report.md`` and ``report.json`` into ``out_dir``; returns report.md."""
    out_dir = Path(out_dir)
    record_path = out_dir / EXPERIMENT_RECORD
    if not record_path.exists():
        raise FileNotFoundError(
            f"{record_path} not found: not a campaign directory (gaitlab experiment run writes it)"
        )
    record = json.loads(record_path.read_text())
    overrides = {run["name"]: run["overrides"] for run in record["runs"]}
    runs = {
        name: summarise_run(name, out_dir / "runs" / name, record["configs"][name], overrides[name])
        for name in overrides
    }
    validation = sorted({run.validation for run in runs.values()})
    comparisons = []
    for comparison in record["comparisons"]:
        figure = f"{_slug(comparison['title'])}.png"
        plot_comparison(
            comparison["title"], [runs[n] for n in comparison["runs"]], out_dir / figure
        )
        comparisons.append({**comparison, "figure": figure})

    finished = sum(run.finished for run in runs.values())
    lines = [
        f"# Experiment {record['name']}",
        "",
        *([record["description"].strip(), ""] if record.get("description") else []),
        f"Validation: {'; '.join(validation)}; rank-1 % in the standard CASIA-B protocol "
        "(gallery nm-01–04, identical views excluded). The curve's points may use only the first "
        "frames of each sequence (then so does its 95 % mark, like for like); a finished run's "
        "final figures use every frame (stars in the figures). Training time counts training "
        "steps only, on a machine that may have been doing other work.",
        "",
        f"Runs finished: {finished} of {len(runs)}. {_time_spent(list(runs.values()))}",
        "",
        markdown_table(list(runs.values())),
        "",
    ]
    for comparison in comparisons:
        lines += [
            f"## {comparison['title']}",
            "",
            f"![{comparison['title']}]({comparison['figure']})",
        ]
        lines += ["", markdown_table([runs[n] for n in comparison["runs"]]), ""]
    report_md = out_dir / "report.md"
    report_md.write_text("\n".join(lines))
    (out_dir / "report.json").write_text(
        json.dumps(
            {
                "experiment": record["name"],
                "validation": validation,
                "runs": {name: asdict(run) for name, run in runs.items()},
                "comparisons": comparisons,
            },
            indent=2,
        )
        + "\n"
    )
    return report_md
