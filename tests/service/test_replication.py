"""service.replication: a follower applies the change log in order, idempotently, and stops
(reporting itself unhealthy) at a change it cannot apply rather than skipping it."""

from __future__ import annotations

import time

import pytest

from models.engine import EmbeddingEngine
from service.gallery import open_store
from service.recognition import Recognizer
from service.replication import ChangeFollower
from tests.helpers import toy_model
from tests.service.test_recognition import person


def test_a_follower_applies_other_writers_changes_and_stops_at_an_unknown_one(tmp_path):
    path = tmp_path / "gallery.db"
    model = toy_model(tmp_path / "toy.onnx")
    writer_store, reader_store = open_store(path), open_store(path)  # two processes' views
    writer = Recognizer.open(EmbeddingEngine(model), writer_store)
    position = reader_store.change_position()
    reader = Recognizer.open(EmbeddingEngine(model), reader_store)
    follower = ChangeFollower(reader, position, load=lambda version: None)

    sample = writer.enroll("p1", person(1))
    writer.enroll("p2", person(2))
    assert follower.catch_up() == 2
    assert follower.catch_up() == 0  # nothing new; applying again would change nothing
    assert reader.identify(person(1)).decision == "p1"
    writer.delete_sample("p1", sample.id)
    follower.catch_up()
    assert reader.identify(person(1)).decision != "p1"
    assert follower.healthy

    with writer_store._write() as db:  # a change from a newer release
        writer_store._log(db, "reshard", [], None)
    stuck_at = follower.position
    with pytest.raises(RuntimeError, match="unknown kind 'reshard'"):
        follower.catch_up()
    assert follower.position == stuck_at
    assert not follower.healthy
    time.sleep(0.05)
    assert follower.lag_now() >= 0.05  # reported as the time it has been failing
    writer_store.close()
    reader_store.close()


def test_a_follower_behind_a_pruned_log_rebuilds_its_index(tmp_path):
    path = tmp_path / "gallery.db"
    model = toy_model(tmp_path / "toy.onnx")
    writer_store, reader_store = open_store(path), open_store(path)
    writer = Recognizer.open(EmbeddingEngine(model), writer_store)
    reader = Recognizer.open(EmbeddingEngine(model), reader_store)
    follower = ChangeFollower(reader, reader_store.change_position(), load=lambda version: None)
    first = writer.enroll("p1", person(1))
    writer.enroll("p2", person(2))
    writer_store.change_retention_s = writer_store.prune_every_s = 0.0
    writer.delete_sample("p1", first.id)  # logged, and the two enrollments pruned
    assert [c.kind for c in reader_store.changes_since(0)] == ["delete"]

    follower.catch_up()
    assert follower.rebuilds == 1
    assert follower.position == writer_store.change_position()
    assert reader.identify(person(2)).decision == "p2"  # enrolled while its change was pruned
    assert reader.identify(person(1)).decision != "p1"
    assert len(reader.index) == len(writer.index) == 1
    writer.enroll("p3", person(3))  # and it follows the log again from there
    assert follower.catch_up() == 1
    assert follower.rebuilds == 1
    assert reader.identify(person(3)).decision == "p3"
    writer_store.close()
    reader_store.close()
