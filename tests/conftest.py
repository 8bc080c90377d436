"""Shared fixtures. Real CASIA-B comes from ../shared/casia-b; tests needing it skip without it."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_CASIA_B = Path(os.environ.get("GAITLAB_SHARED_CASIA_B", REPO.parent / "shared" / "casia-b"))

# 001 is a complete subject; 005 has short sequences and a missing view (000).
FIXTURE_SUBJECTS = ("001", "005")


@pytest.fixture(scope="session")
def shared_casia_b() -> Path:
    """The shared CASIA-B distribution (archives, manifest); skips the test when it is absent."""
    if not (SHARED_CASIA_B / "train").is_dir():
        pytest.skip(f"real CASIA-B not found at {SHARED_CASIA_B}")
    return SHARED_CASIA_B


def unpack(shared: Path, root: Path, subjects: tuple[str, ...]) -> Path:
    for subject in subjects:
        with tarfile.open(shared / "train" / f"{subject}.tar.xz") as archive:
            archive.extractall(root, filter="data")
    return root


@pytest.fixture(scope="session")
def casia_b_tree(shared_casia_b: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pkl tree holding the real subjects in ``FIXTURE_SUBJECTS``, unpacked once per run."""
    return unpack(shared_casia_b, tmp_path_factory.mktemp("casia-b"), FIXTURE_SUBJECTS)


TRAINING_SUBJECTS = ("001", "002", "003", "004", "065", "066")


@pytest.fixture(scope="session")
def real_training_tree(shared_casia_b: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real subjects for short runs: 001–004 to train on, 065–066 to validate on (065 has
    sequences of 120+ frames, which the export's parity check needs)."""
    return unpack(shared_casia_b, tmp_path_factory.mktemp("casia-b-train"), TRAINING_SUBJECTS)


@pytest.fixture(scope="session")
def synthetic_training_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same subjects drawn in code (``tests/synthetic_casia.py``): 3 views, 30 frames."""
    from tests.synthetic_casia import write_synthetic_tree

    return write_synthetic_tree(tmp_path_factory.mktemp("synthetic-train"), TRAINING_SUBJECTS)


@pytest.fixture(scope="session", params=["real", "synthetic"])
def training_tree(request: pytest.FixtureRequest) -> Path:
    """A tree for short runs, real (skipped where CASIA-B is absent) and drawn in code, so a
    fresh clone tests the training code and not only the skip."""
    return request.getfixturevalue(f"{request.param}_training_tree")


@pytest.fixture(scope="session")
def manifest(shared_casia_b: Path) -> dict[tuple[str, str, str], int]:
    """(subject, condition, view) → frame count, from the shared manifest."""
    rows = (shared_casia_b / "manifest.tsv").read_text().splitlines()[1:]
    return {tuple(r.split("\t")[:3]): int(r.split("\t")[3]) for r in rows}


def throwaway_postgres():
    """A started throwaway PostgreSQL server (``tests/postgres_server.py``); skips the test
    where psycopg or the server's binaries are missing. The caller stops it."""
    pytest.importorskip("psycopg")
    from tests.postgres_server import ThrowawayPostgres, find_bindir

    bindir = find_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries on this machine")
    return ThrowawayPostgres(bindir).start()


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server, or the one named by ``GAITLAB_TEST_DATABASE_URL``; skips
    the test when neither is to be had."""
    if url := os.environ.get("GAITLAB_TEST_DATABASE_URL"):
        yield url
        return
    server = throwaway_postgres()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """The URL of a fresh, empty database."""
    if isinstance(postgres_server, str):
        return postgres_server
    return postgres_server.new_database()


@pytest.fixture(scope="session")
def _outage_postgres():
    server = throwaway_postgres()
    yield server
    server.stop()


@pytest.fixture
def own_postgres(_outage_postgres):
    """A throwaway PostgreSQL server apart from the one other tests share, for tests that take
    it away and bring it back (``ThrowawayPostgres.take_away``, ``bring_back``); running again
    after each test, whatever the test left. Skips where no server can be started here."""
    yield _outage_postgres
    if not _outage_postgres.running():
        _outage_postgres.bring_back()
