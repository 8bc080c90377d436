"""The gaitlab command: argument errors and the data commands on real data."""

from __future__ import annotations

import json

import pytest

from gaitlab.cli import main


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "usage: gaitlab" in capsys.readouterr().err


def test_stats_on_a_missing_tree_says_so(tmp_path, capsys):
    assert main(["data", "stats", str(tmp_path / "nowhere")]) == 2
    assert "no CASIA-B tree" in capsys.readouterr().err


def test_bad_subject_selection_says_so(tmp_path, capsys):
    assert main(["data", "stats", str(tmp_path), "--subjects", "LT"]) == 2
    assert "LT-train or -test" in capsys.readouterr().err


@pytest.mark.casia
def test_stats_on_real_subjects(casia_b_tree, tmp_path, capsys, manifest):
    out = tmp_path / "stats.json"
    assert main(["data", "stats", str(casia_b_tree), "--subjects", "005", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    frames = sum(n for k, n in manifest.items() if k[0] == "005")
    assert f"frames     {frames}" in printed
    assert "missing: 10" in printed
    report = json.loads(out.read_text())
    assert report["subjects"] == 1
    assert len(report["short"]) == 9


def test_eval_without_a_model_uses_the_default_or_says_there_is_none(tmp_path, capsys):
    from models.default import DEFAULT_MODEL

    code = main(["eval", "--data", str(tmp_path), "--subjects", "001"])
    assert code == 2
    error = capsys.readouterr().err
    if DEFAULT_MODEL.exists():
        assert "no sequences" in error  # the default model loaded; the empty tree is the problem
    else:
        assert "no default model" in error
