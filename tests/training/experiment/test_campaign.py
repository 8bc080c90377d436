"""gaitlab experiment run / report on real CASIA-B: a tiny two-run campaign, interrupted and
continued, then reported as figures, a table and JSON."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from gaitlab.cli import main
from tests.training.test_trainer import tiny_config
from training.checkpoint import load_checkpoint
from training.experiment.report import build_report, summarise_run
from training.experiment.runner import ExperimentError, run_experiment
from training.experiment.spec import load_experiment

pytestmark = [pytest.mark.casia, pytest.mark.slow]

ITERATIONS = 6


def rows(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def experiment_file(training_tree, tmp_path) -> Path:
    base = tiny_config(training_tree, tmp_path / "unused", iterations=ITERATIONS)
    base["run"].update(val_every=2, checkpoint_every=2, val_max_frames=10)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    spec = {
        "name": "tiny",
        "base": "base.yaml",
        "runs": [
            {"name": "fused"},
            {"name": "baseline", "overrides": {"model": {"name": "baseline"}}},
        ],
        "comparisons": [{"title": "Fused against baseline", "runs": ["fused", "baseline"]}],
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


class InterruptError(Exception):
    pass


def test_an_interrupted_campaign_resumes_and_reports(experiment_file, tmp_path, capsys):
    out = tmp_path / "campaign"
    experiment = load_experiment(experiment_file)

    def stop_in_second_run(run: str, iteration: int) -> None:
        if run == "baseline" and iteration == 3:  # after the checkpoint at 2
            raise InterruptError

    with pytest.raises(InterruptError):
        run_experiment(experiment, out, progress=False, on_step=stop_in_second_run)
    fused, baseline = out / "runs" / "fused", out / "runs" / "baseline"
    assert (fused / "finished.json").exists()
    assert not (baseline / "finished.json").exists()
    assert load_checkpoint(baseline / "latest.pt")["iteration"] == 2
    first_sitting = rows(baseline / "train.csv")[:2]
    fused_records = (fused / "train.csv").read_bytes(), (fused / "val.csv").read_bytes()

    # the report works on a campaign that has not finished
    build_report(out)
    assert "at 3 of 6" in (out / "report.md").read_text()

    # the same command again: the finished run is skipped, the interrupted one resumes
    capsys.readouterr()
    assert main(["experiment", "run", str(experiment_file), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "run 1 of 2: fused finished earlier, skipped" in printed.out
    assert "run 2 of 2: baseline" in printed.out
    assert "resumed from" in printed.out
    assert "at iteration 2" in printed.out
    assert "| 12/12 " in printed.err  # the campaign bar: 6 + 2 kept, 4 trained now
    assert ((fused / "train.csv").read_bytes(), (fused / "val.csv").read_bytes()) == fused_records
    history = rows(baseline / "train.csv")
    assert [int(r["iteration"]) for r in history] == list(range(1, ITERATIONS + 1))
    assert history[:2] == first_sitting  # kept, not retrained
    assert load_checkpoint(baseline / "latest.pt")["iteration"] == ITERATIONS

    # validation: frame-capped points, then every frame at the end
    val = rows(baseline / "val.csv")
    assert [(int(r["iteration"]), r["max_frames"]) for r in val] == [
        (2, "10"),
        (4, "10"),
        (6, "10"),  # the curve's last point, like the others
        (6, ""),  # and the final figures on every frame
    ]

    assert main(["experiment", "report", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["runs"]) == {"fused", "baseline"}
    for run in report["runs"].values():
        assert run["finished"]
        assert run["final_all_frames"]
        assert run["curves"]["train"]["iteration"] == list(range(1, ITERATIONS + 1))
        assert run["curves"]["val"]["iteration"] == [2, 4, 6, 6]
        assert run["final"]["NM"] == run["curves"]["val"]["NM"][-1]  # all frames
        assert run["best"]["CL"] == max(run["curves"]["val"]["CL"][:3])  # over the curve
        assert run["reach_nm_iteration"] in (2, 4, 6)
        assert run["seconds_per_iteration"] > 0
        assert run["training_seconds"] == pytest.approx(
            run["seconds_per_iteration"] * ITERATIONS, abs=0.1
        )
        assert run["threads"] == 1
        assert run["validation"] == "065-066 (2 subjects)"
    total = sum(run["training_seconds"] for run in report["runs"].values()) / 3600
    assert (
        f"Training steps so far: {total:.1f} h, {total:.1f} CPU-hours at most"
        in (out / "report.md").read_text()
    )
    (comparison,) = report["comparisons"]
    assert (out / comparison["figure"]).stat().st_size > 20_000
    table = (out / "report.md").read_text()
    assert "| fused | (base) | finished |" in table
    assert "| baseline | model.name=baseline | finished |" in table
    assert "065-066 (2 subjects)" in table


def test_a_run_started_with_another_recipe_is_refused(experiment_file, tmp_path):
    out = tmp_path / "campaign"
    run_experiment(load_experiment(experiment_file), out, progress=False)
    spec = yaml.safe_load(experiment_file.read_text())
    spec["runs"][1]["overrides"]["optimizer"] = {"lr": 0.2}
    experiment_file.write_text(yaml.safe_dump(spec))
    with pytest.raises(ExperimentError, match=r"run 'baseline'.*optimizer\.lr"):
        run_experiment(load_experiment(experiment_file), out, progress=False)


def test_a_run_recorded_before_the_schema_grew_still_resumes(experiment_file, tmp_path):
    out = tmp_path / "campaign"
    run_experiment(load_experiment(experiment_file), out, progress=False)
    stored = out / "runs" / "fused" / "config.json"
    record = json.loads(stored.read_text())
    del record["run"]["compile"]  # a field added after the run started: its default applies
    del record["eval"]  # a whole section, likewise
    stored.write_text(json.dumps(record))
    assert run_experiment(load_experiment(experiment_file), out, progress=False) == []
    # whether the net is compiled is how fast it steps, not the recipe
    spec = yaml.safe_load(experiment_file.read_text())
    spec["runs"][0]["overrides"] = {"run": {"compile": True}}
    experiment_file.write_text(yaml.safe_dump(spec))
    assert run_experiment(load_experiment(experiment_file), out, progress=False) == []


def test_time_to_reach_is_read_between_logged_rows_and_only_for_finished_runs(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "train.csv").write_text(
        "iteration,loss,triplet,lr,frames_per_s,elapsed_s\n"
        "20,2.0,1.5,0.05,100,10.0\n40,1.0,0.7,0.05,100,30.0\n"
        "50,0.9,"  # a row still being written when the report reads it
    )
    (run_dir / "val.csv").write_text(
        "iteration,NM,BG,CL,max_frames\n30,58.0,40.0,20.0,30\n40,60.0,45.0,25.0,30\n"
        "40,70.0,55.0,30.0,\n"
    )
    config = {"run": {"iterations": 40, "threads": 2}, "data": {"val_subjects": "051-074"}}
    going = summarise_run("r", run_dir, config, {})
    assert going.reach_nm_iteration is None  # its last point may still move
    (run_dir / "finished.json").write_text("{}")
    done = summarise_run("r", run_dir, config, {})
    assert done.reach_nm_iteration == 30  # 58 >= 95 % of the curve's last 60
    assert done.reach_nm_seconds == pytest.approx(20.0)  # halfway between 10 s and 30 s
    assert done.final == {"NM": 70.0, "BG": 55.0, "CL": 30.0}
    assert done.final_all_frames
    assert done.curves["train"]["iteration"] == [20, 40]  # the half-written row left out
    assert done.curves["train"]["triplet"] == [1.5, 0.7]  # every logged column
    assert done.curves["train"]["lr"] == [0.05, 0.05]
