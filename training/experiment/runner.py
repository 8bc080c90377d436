"""``gaitlab experiment run``: the experiment's runs one after another, each in DIR/runs/NAME.

A finished run (``finished.json`` beside its records) is skipped; an interrupted one resumes from
its ``latest.pt``, so rerunning the same command continues a campaign where it stopped. A run
whose stored config differs from what the experiment file now says is an error, not a silent
mix of two recipes. Progress: the trainer's bar per run, and a campaign bar (run k of n,
iterations of the whole campaign, time spent, estimate left).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from training.config import TrainConfig
from training.experiment.spec import Experiment
from training.run_log import read_records

EXPERIMENT_RECORD = "experiment.json"
RUN_CONFIG = "config.json"
FINISHED = "finished.json"
# Differences that do not change what a run computes: where it writes, where the data sits.
# where a run lives and how fast it steps are not its recipe (a campaign may move machines)
_PORTABLE = {("run", "out_dir"), ("data", "root"), ("run", "compile"), ("run", "threads")}


class ExperimentError(ValueError):
    """The campaign directory disagrees with the experiment file."""


def _comparable(config: TrainConfig | dict) -> dict:
    data = config.model_dump(mode="json") if isinstance(config, TrainConfig) else config
    return {
        section: (
            {k: v for k, v in values.items() if (section, k) not in _PORTABLE}
            if isinstance(values, dict)
            else values
        )
        for section, values in data.items()
    }


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    found = []
    for key in keys:
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            found += _differences(left, right, f"{prefix}{key}.")
        elif left != right:
            found.append(f"{prefix}{key}")
    return found


def iterations_done(run_dir: Path) -> int:
    """The last logged training iteration of a run (0 when it has not started)."""
    rows = read_records(Path(run_dir) / "train.csv")
    return int(rows[-1]["iteration"]) if rows else 0


def iterations_kept(run_dir: Path, iterations: int) -> int:
    """Iterations a run will not train again: all of a finished run, else its checkpoint's."""
    from training.checkpoint import load_checkpoint
    from training.trainer import LATEST

    if is_finished(run_dir):
        return iterations
    checkpoint = Path(run_dir) / LATEST
    return load_checkpoint(checkpoint)["iteration"] if checkpoint.exists() else 0


def training_seconds(run_dir: Path) -> float:
    """Seconds a run has spent in training steps, over every sitting."""
    rows = read_records(Path(run_dir) / "train.csv")
    return rows[-1]["elapsed_s"] if rows else 0.0


def is_finished(run_dir: Path) -> bool:
    return (Path(run_dir) / FINISHED).exists()


def _check_same_recipe(run_dir: Path, config: TrainConfig) -> None:
    stored_path = run_dir / RUN_CONFIG
    if not stored_path.exists():
        return
    stored = json.loads(stored_path.read_text())
    # a run recorded before the schema grew a field gets that field's default; one that no
    # longer validates is compared as stored (the differences name what changed)
    with contextlib.suppress(ValueError):
        stored = TrainConfig.model_validate(stored).model_dump(mode="json")
    if differ := _differences(_comparable(stored), _comparable(config)):
        raise ExperimentError(
            f"run {config.name!r} in {run_dir} was started with another config ({', '.join(differ)}"
            f" differ); restore the experiment file, or remove {run_dir} to start that run over"
        )


def _record_experiment(experiment: Experiment, out_dir: Path) -> None:
    record = {
        **experiment.spec.model_dump(mode="json"),
        "source": str(experiment.source),
        "configs": {
            name: experiment.config(name, out_dir).model_dump(mode="json")
            for name in experiment.run_names
        },
    }
    (out_dir / EXPERIMENT_RECORD).write_text(json.dumps(record, indent=2) + "\n")


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def run_experiment(
    experiment: Experiment,
    out_dir: str | Path,
    progress: bool = True,
    on_step: Callable[[str, int], None] | None = None,
) -> list[str]:
    """Run every unfinished run of ``experiment`` in ``out_dir``; returns the runs trained now.

    ``on_step(run, iteration)`` is called after every training step.
    """
    from training.trainer import train

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = experiment.run_names
    configs = {name: experiment.config(name, out_dir) for name in names}
    for config in configs.values():  # refuse before training anything
        _check_same_recipe(config.run.out_dir, config)
    _record_experiment(experiment, out_dir)

    total = sum(c.run.iterations for c in configs.values())
    done = sum(iterations_kept(c.run.out_dir, c.run.iterations) for c in configs.values())
    campaign = tqdm(
        total=total, initial=done, desc="campaign", unit="it", position=0, disable=not progress
    )
    trained = []
    for k, name in enumerate(names, 1):
        config = configs[name]
        run_dir = Path(config.run.out_dir)
        if is_finished(run_dir):
            campaign.write(f"run {k} of {len(names)}: {name} finished earlier, skipped")
            continue
        spent = sum(training_seconds(c.run.out_dir) for c in configs.values())
        finished_its = sum(
            c.run.iterations if is_finished(c.run.out_dir) else iterations_done(c.run.out_dir)
            for c in configs.values()
        )
        estimate = (
            f", about {_duration(spent / finished_its * (total - finished_its))} left"
            if finished_its
            else ""
        )
        campaign.write(
            f"run {k} of {len(names)}: {name} "
            f"(campaign: {_duration(spent)} of training spent{estimate})"
        )
        campaign.set_description(f"campaign, run {k}/{len(names)}")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / RUN_CONFIG).write_text(
            json.dumps(config.model_dump(mode="json"), indent=2) + "\n"
        )
        started = time.perf_counter()

        def step(iteration: int, name: str = name) -> None:
            campaign.update(1)
            if on_step:
                on_step(name, iteration)

        train(config, resume=True, progress=progress, on_step=step)
        finished = {
            "iterations": config.run.iterations,
            "training_s": training_seconds(run_dir),
            "wall_s_last_sitting": round(time.perf_counter() - started, 1),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        (run_dir / FINISHED).write_text(json.dumps(finished, indent=2) + "\n")
        trained.append(name)
    campaign.close()
    return trained
