"""training.evaluation.report: text table, JSON, heat maps, embeddings files."""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from training.evaluation.protocol import EvaluationResult, evaluate
from training.evaluation.report import (
    format_table,
    load_embeddings,
    plot_heatmaps,
    save_embeddings,
    write_json,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def result(hand_example) -> EvaluationResult:
    return evaluate(*hand_example, metric="euc")


def test_table_has_one_row_per_probe_set(result):
    lines = format_table(result).splitlines()
    assert "metric euc" in lines[0]
    assert lines[1].split() == ["set", "mean", "000", "018", *result.views[2:], "probes"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert list(rows) == ["NM", "BG", "CL"]
    assert rows["NM"] == ["NM", "25.0", "0.0", "50.0", *["-"] * 9, "4"]
    assert rows["BG"] == ["BG", "100.0", "100.0", *["-"] * 10, "1"]
    assert rows["CL"] == ["CL", *["-"] * 12, "0"]


def test_json_round_trip_is_strict_json(result, tmp_path):
    path = tmp_path / "out" / "result.json"
    write_json(result, path)

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    data = json.loads(path.read_text(), parse_constant=refuse)
    assert data["mean"] == {"NM": 25.0, "BG": 100.0, "CL": None}
    assert data["accuracy"]["NM"][0][1] == 0.0
    assert data["accuracy"]["NM"][0][0] is None
    assert data["per_view"]["BG"]["018"] is None
    assert data["num_probes"] == {"NM": 4, "BG": 1, "CL": 0}
    back = EvaluationResult.from_dict(data)
    assert back.to_dict() == result.to_dict()
    for name in result.accuracy:
        np.testing.assert_array_equal(back.accuracy[name], result.accuracy[name])
    assert math.isnan(back.mean["CL"])


def test_heatmaps_are_a_png(result, tmp_path):
    path = tmp_path / "heatmaps.png"
    plot_heatmaps(result, path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    assert width > 2 * height > 0  # three maps side by side


def test_report_imports_neither_matplotlib_nor_torch():
    code = (
        "import sys, training.evaluation.report; "
        "print('matplotlib' in sys.modules, 'torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]


def test_embeddings_round_trip_without_pickle(tmp_path):
    feats = np.random.default_rng(0).normal(size=(3, 4, 2)).astype(np.float32)
    subjects = np.array(["001", "001", "002"], dtype=object)  # object arrays would need pickle
    conds, views = ["nm-01", "bg-02", "cl-01"], ("000", "090", "180")
    path = tmp_path / "embeddings.npz"
    save_embeddings(path, feats, subjects, conds, views)

    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == ["conds", "feats", "subjects", "views"]
        np.testing.assert_array_equal(data["feats"], feats)
        assert data["feats"].dtype == np.float32
        for key, expected in (("subjects", subjects), ("conds", conds), ("views", views)):
            assert data[key].dtype.kind == "U"
            assert data[key].tolist() == list(expected)

    loaded = load_embeddings(path)
    np.testing.assert_array_equal(loaded[0], feats)
    assert [a.tolist() for a in loaded[1:]] == [list(subjects), conds, list(views)]


def test_embeddings_refuse_bad_shapes_and_foreign_files(tmp_path):
    with pytest.raises(ValueError, match="one label per embedding"):
        save_embeddings(tmp_path / "a.npz", np.ones((2, 3, 1)), ["001"], ["nm-01"] * 2, ["000"] * 2)
    with pytest.raises(ValueError, match=r"\[n, c, p\]"):
        save_embeddings(tmp_path / "a.npz", np.ones((2, 3)), ["001"] * 2, ["nm-01"] * 2, ["0"] * 2)
    np.savez(tmp_path / "other.npz", feats=np.ones((1, 1, 1)))
    with pytest.raises(ValueError, match="expected arrays"):
        load_embeddings(tmp_path / "other.npz")
