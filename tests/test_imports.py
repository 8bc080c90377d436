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


def project_imports() -> dict[str, set[str]]:
    """module → the project modules it imports, anywhere in it (inside functions too)."""
    modules = {}
    for package in ("models", "training", "service", "gaitlab"):
        for path in (REPO / package).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def project_module(name: str) -> str | None:  # the longest prefix that is a module
        parts = name.split(".")
        return next(
            (
                ".".join(parts[:i])
                for i in range(len(parts), 0, -1)
                if ".".join(parts[:i]) in modules
            ),
            None,
        )

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            for name in names:
                target = project_module(name)
                # a package's own __init__ is imported with any of its modules: not an arrow
                if target and target != module and not module.startswith(target + "."):
                    found.add(target)
        graph[module] = found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every set of modules that import each other, directly or not (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_circles_lazy_imports_included():
    graph = project_imports()
    assert cycles(graph) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_arrows_point_one_way():
    graph = project_imports()
    # a base module does not import its backends; a metrics module not what it measures
    assert not graph["service.gallery.store"] & {
        "service.gallery.sqlite",
        "service.gallery.postgres",
    }
    assert not {m for m in graph["service.metrics"] if m.startswith("service.")}
    assert "faiss" not in modules_loaded_by("import service.settings")
