"""The gallery store going away under a running service, end to end: real uvicorn processes,
a real PostgreSQL server (this module's own) stopped and crashed under two replicas with
clients enrolling, identifying and polling ``/readyz``; a real SQLite file locked by another
process, and its disk really full (a small tmpfs, where this machine lets the test mount one).

What must hold (docs/service/outages.md): no answer but 2xx, 4xx and 503 (``store_unavailable``
in the error shape, with ``Retry-After``); every enrollment answered within 5 s and /readyz
within 1 s; /readyz says the store is down within its budget and up again after; identify
answers throughout; enrollments succeed again within 5 s of the store's return; nothing
acknowledged is lost, and replication resumes.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time

import httpx
import pytest

from tests.helpers import toy_model
from tests.service.gallery.test_store_outage import locked_by_another_process
from tests.service.live_server import Server
from tests.service.outage_load import (
    ENROLL_BUDGET_S,
    READYZ_BUDGET_S,
    RECOVERY_BUDGET_S,
    Load,
    figures,
    missing,
    outage,
    replication_caught_up,
)
from tests.service.test_operations_e2e import aligned_clip

pytestmark = pytest.mark.slow

IDENTIFY_BOUND_S = 2.0  # identify never waits on the store: far below any store timeout


@pytest.fixture
def replicas(tmp_path, own_postgres):
    url = own_postgres.new_database()
    model = toy_model(tmp_path / "toy.onnx")
    started = [
        Server(model, tmp_path / f"data-{n}", env={"GAITLAB_DATABASE_URL": url}) for n in range(2)
    ]
    for server in started:
        server.start()
    yield url, [server.url for server in started]
    for server in started:
        server.stop()


def test_two_replicas_ride_out_a_stop_and_a_crash_of_postgres(own_postgres, replicas):
    url, urls = replicas
    for n in range(2):  # subjects for identify to find
        enrolled = httpx.post(
            f"{urls[n]}/gallery/subjects/known{n}/samples",
            files={"clip": ("c.npy", aligned_clip(n))},
        )
        assert enrolled.status_code == 201, enrolled.text
    # the crash lasts longer than psycopg_pool's reconnect delay grows in (1 + 2 + 4 s)
    outages = (("stop", 2.0), ("crash", 8.0))
    with Load(urls, aligned_clip) as load:
        time.sleep(1.0)
        windows = []
        for how, seconds in outages:
            windows.append(window := outage(own_postgres, how, seconds))
            load.wait_recovered(since=window.back, timeout=RECOVERY_BUDGET_S)
            time.sleep(0.5)
    answers = load.answers

    ends = [w.started for w in windows[1:]] + [time.monotonic()]  # the next outage, or now
    for window, until in zip(windows, ends, strict=True):
        seen = figures(answers, window, until, len(urls))
        print(f"{window.how} ({window.back - window.gone:.1f} s): {seen.table_row()}")
        assert set(seen.statuses["enroll"]) <= {201, 503}, seen.statuses
        assert seen.statuses["enroll"].get(503), "the outage was not felt"
        assert set(seen.statuses["identify"]) == {200}, seen.statuses
        assert set(seen.statuses["readyz"]) <= {200, 503}, seen.statuses
        assert seen.malformed_503 == 0
        assert seen.max_enroll_s < ENROLL_BUDGET_S
        assert seen.max_identify_s < IDENTIFY_BOUND_S
        assert seen.max_readyz_s < READYZ_BUDGET_S
        assert seen.readyz_down_after_s is not None
        assert seen.readyz_down_after_s < READYZ_BUDGET_S
        assert seen.readyz_up_in_outage == 0
        assert seen.readyz_up_after_s is not None
        assert seen.readyz_up_after_s < RECOVERY_BUDGET_S
        assert seen.first_enroll_after_s is not None
        assert seen.first_enroll_after_s < RECOVERY_BUDGET_S

    refusal = next(a for a in answers if a.kind == "enroll" and a.status == 503)
    assert refusal.body["error"] == "store_unavailable"
    assert "unavailable" in refusal.body["detail"]
    assert len(load.acknowledged) > 20
    assert missing(load.acknowledged, url) == []
    print(f"replicas caught up {replication_caught_up(urls, url):.2f} s after the load")
    for replica in urls:
        assert httpx.get(f"{replica}/readyz").json()["status"] == "ready"


@pytest.fixture
def sqlite_server(tmp_path):
    server = Server(toy_model(tmp_path / "toy.onnx"), tmp_path / "data").start()
    yield server
    server.stop()


def test_a_sqlite_file_locked_by_another_process_is_a_503_in_bounded_time(sqlite_server):
    client = httpx.Client(base_url=sqlite_server.url, timeout=30)
    clip = {"clip": ("c.npy", aligned_clip(1))}
    assert client.post("/gallery/subjects/a/samples", files=clip).status_code == 201
    with locked_by_another_process(sqlite_server.data_dir / "gallery.db"):
        started = time.monotonic()
        refused = client.post("/gallery/subjects/b/samples", files=clip)
        took = time.monotonic() - started
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "store_unavailable"
        assert "locked by another process" in refused.json()["detail"]
        assert refused.headers["retry-after"] == "1"
        assert took < ENROLL_BUDGET_S
        assert client.post("/identify", files=clip).json()["hits"][0]["subject_id"] == "a"
        assert client.get("/gallery/subjects/a").status_code == 200  # reads go on (WAL)
        deadline = time.monotonic() + 5
        while client.get("/readyz").json()["checks"]["store"]:
            assert time.monotonic() < deadline, "/readyz never said the store was down"
            time.sleep(0.1)
    assert client.post("/gallery/subjects/b/samples", files=clip).status_code == 201
    ready = client.get("/readyz")
    for _ in range(50):
        if ready.json()["checks"]["store"]:
            break
        time.sleep(0.1)
        ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (mounting needs root, or this test skips), unmounted at the end."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr!r}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_under_sqlite_is_a_503_and_loses_nothing_acknowledged(tmp_path, small_disk):
    data = small_disk / "data"
    server = Server(toy_model(tmp_path / "toy.onnx"), data)
    server.log = tmp_path / "server.log"  # not on the small disk
    server.start()
    try:
        client = httpx.Client(base_url=server.url, timeout=30)
        acknowledged, refusal = {}, None
        for n in range(2000):
            answer = client.post(
                f"/gallery/subjects/s{n}/samples", files={"clip": ("c.npy", aligned_clip(n))}
            )
            if answer.status_code != 201:
                refusal = answer
                break
            acknowledged[f"s{n}"] = answer.json()["id"]
        assert refusal is not None, "the disk never filled"
        assert refusal.status_code == 503, refusal.text
        assert refusal.json()["detail"].startswith("the gallery store is unavailable (the disk")
        assert refusal.headers["retry-after"] == "1"
        assert acknowledged
        top = client.post("/identify", files={"clip": ("c.npy", aligned_clip(0))}).json()
        assert top["hits"][0]["subject_id"] == "s0"  # identify answers from memory

        subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
        answer = client.post("/gallery/subjects/late/samples", files={"clip": ("c.npy", b"")})
        assert answer.status_code == 422  # a bad clip is still a bad clip
        answer = client.post(
            "/gallery/subjects/late/samples", files={"clip": ("c.npy", aligned_clip(5000))}
        )
        assert answer.status_code == 201, answer.text
        acknowledged["late"] = answer.json()["id"]
    finally:
        server.stop()
    with sqlite3.connect(data / "gallery.db") as db:
        stored = dict(db.execute("SELECT subject_id, id FROM samples").fetchall())
    assert {s: stored.get(s) for s in acknowledged} == acknowledged
