"""The dependency rules: the service side never pulls in torch; the packages never cross-import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


@pytest.mark.parametrize(
    ("statement", "needs"),
    [
        (
            "import service.main, service.cli; service.main.create_app()",
            {"service.main", "fastapi", "onnxruntime", "faiss", "models.engine"},
        ),
        (
            "import models, models.contract, models.silhouette, models.engine, models.scoring",
            {"models.silhouette", "cv2", "onnxruntime"},
        ),
        (
            "import training.data.casia_b, training.data.cache, training.data.pretreat",
            {"training.data.pretreat", "cv2"},
        ),
        ("import gaitlab.cli; gaitlab.cli.build_parser()", {"gaitlab.cli", "training.cli"}),
    ],
)
def test_no_torch_on_the_service_side(statement, needs):
    loaded = modules_loaded_by(statement)
    assert needs <= loaded  # it did load what it stands for: the next line is not vacuous
    assert "torch" not in loaded


def imports_of(package: str) -> set[str]:
    found = set()
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_dependency_direction():
    assert not imports_of("service") & {"training", "torch", "gaitlab"}
    assert not imports_of("training") & {"service", "gaitlab"}
    assert not imports_of("models") & {"service", "training", "gaitlab"}


def test_console_script_runs():
    result = subprocess.run(
        [sys.executable, "-m", "gaitlab", "data", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    assert "pretreat" in result.stdout
    assert "stats" in result.stdout
