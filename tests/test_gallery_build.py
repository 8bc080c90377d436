"""gaitlab gallery build: real CASIA-B subjects into a store, and through a running service."""

from __future__ import annotations

import httpx
import pytest

from gaitlab.cli import main
from service.gallery import open_store
from tests.helpers import toy_model, toys_with_a_bad_int8
from tests.service.live_server import ADMIN_KEY, CLIENT_KEY, Server

pytestmark = [pytest.mark.casia, pytest.mark.slow]
NM_GALLERY = "nm-01,nm-02,nm-03,nm-04"


def test_build_into_a_store(casia_b_tree, tmp_path, manifest, capsys):
    model = toy_model(tmp_path / "toy.onnx")
    args = ["gallery", "build", "--casia-b", str(casia_b_tree), "--subjects", "001,005"]
    args += [
        "--conditions",
        NM_GALLERY,
        "--data-dir",
        str(tmp_path / "data"),
        "--model",
        str(model),
    ]
    assert main(args) == 0
    expected = [k for k in manifest if k[0] in ("001", "005") and k[1] in NM_GALLERY.split(",")]
    assert f"enrolled {len(expected)} sequences of 2 subjects" in capsys.readouterr().out
    store = open_store(tmp_path / "data" / "gallery.db")
    subject = store.get_subject("005")
    assert {(s.condition, s.view) for s in subject.samples} == {
        (c, v) for s, c, v in expected if s == "005"
    }
    assert len(store.embeddings("toy-1").sample_ids) == len(expected)
    store.close()


def test_build_through_the_api_with_a_key(casia_b_tree, tmp_path, monkeypatch, capsys):
    keys = {"GAITLAB_ADMIN_KEYS": ADMIN_KEY, "GAITLAB_CLIENT_KEYS": CLIENT_KEY}
    server = Server(toy_model(tmp_path / "toy.onnx"), tmp_path / "data", env=keys).start()
    try:
        args = ["gallery", "build", "--casia-b", str(casia_b_tree), "--subjects", "001"]
        args += ["--conditions", "nm-01", "--url", server.url]
        monkeypatch.delenv("GAITLAB_API_KEY", raising=False)
        assert main(args) == 2
        assert "(401)" in capsys.readouterr().err
        assert main([*args, "--api-key", CLIENT_KEY]) == 2  # a client key may not enroll
        assert "(403)" in capsys.readouterr().err
        monkeypatch.setenv("GAITLAB_API_KEY", ADMIN_KEY)
        assert main(args) == 0
        client = httpx.Client(base_url=server.url, headers={"X-API-Key": CLIENT_KEY})
        listing = client.get("/gallery/subjects").json()
        assert listing["items"] == [{"id": "001", "samples": 11}]
        views = {s["view"] for s in client.get("/gallery/subjects/001").json()["samples"]}
        assert len(views) == 11
    finally:
        server.stop()


def test_build_reports_bad_input(tmp_path, capsys):
    args = ["gallery", "build", "--casia-b", str(tmp_path), "--subjects", "LT"]
    assert main([*args, "--data-dir", str(tmp_path / "d")]) == 2
    assert "LT-train or -test" in capsys.readouterr().err


def test_build_embeds_with_what_the_service_would_serve_here(casia_b_tree, tmp_path, capsys):
    """An int8 variant that disagrees with its fp32 reference here gives way to fp32, as the
    service's start does, so the store holds the embeddings the service will search."""
    _, bad = toys_with_a_bad_int8(tmp_path)
    args = ["gallery", "build", "--casia-b", str(casia_b_tree), "--subjects", "001"]
    args += ["--conditions", "nm-01", "--data-dir", str(tmp_path / "data"), "--model", str(bad)]
    assert main(args) == 0
    output = capsys.readouterr()
    assert "toy-1-int8-00000000 (int8, cpu) DISAGREES" in output.err
    assert "with toy-1" in output.out
    store = open_store(tmp_path / "data" / "gallery.db")
    assert len(store.embeddings("toy-1").sample_ids) == 11
    assert len(store.embeddings("toy-1-int8-00000000").sample_ids) == 0
    store.close()
