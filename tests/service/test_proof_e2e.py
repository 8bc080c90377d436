"""The service proves its model where it runs (``models.proof``), end to end: a real uvicorn
process on toy models whose cards carry right or wrong reference embeddings."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import toy_model, toys_with_a_bad_int8, with_reference
from tests.service.live_server import Server


@pytest.fixture
def models(tmp_path):
    """toy.onnx (fp32, right reference) and toy.int8.onnx (an int8 variant of it whose
    reference it does not reproduce: what saturating kernels did on CPUs without VNNI)."""
    return toys_with_a_bad_int8(tmp_path)


def test_an_int8_variant_that_disagrees_here_gives_way_to_fp32(models, tmp_path):
    _, int8 = models
    server = Server(int8, tmp_path / "data").start()
    try:
        client = httpx.Client(base_url=server.url, timeout=30)
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert "toy-1-int8-00000000 (int8, cpu) DISAGREES" in ready.json()["fallback"]
        assert "serving toy-1 (fp32) instead" in ready.json()["fallback"]
        model = client.get("/model").json()
        assert model["version"] == "toy-1"
        assert model["start"]["proof"]["passed"] is True
        assert model["start"]["proof"]["agreement"] == pytest.approx(1.0)
        assert model["start"]["refused"]["version"] == "toy-1-int8-00000000"
        assert model["start"]["refused"]["agreement"] == pytest.approx(-1.0)
        assert model["self_test"]["ok"] is True
        assert model["self_test"]["agreement"] == pytest.approx(1.0)  # through the live path
        assert "reference" not in model["card"]  # the clips stay out of the answer
        assert model["card"]["variant"] == "fp32"
    finally:
        server.stop()
    log = server.log.read_text()
    assert "model refused on this machine: falling back to fp32" in log


def test_a_model_that_disagrees_with_nothing_to_fall_back_to_does_not_start(tmp_path):
    bad = with_reference(toy_model(tmp_path / "toy.onnx"), wrong=True)
    with pytest.raises(RuntimeError, match="did not start"):
        Server(bad, tmp_path / "data").start(timeout=30)
    assert (
        "DISAGREES with its fp32 reference"
        in (tmp_path / "data")
        .parent.joinpath(next(p.name for p in tmp_path.glob("server-*.log")))
        .read_text()
    )


def test_a_refresh_to_a_model_that_disagrees_here_is_refused(models, tmp_path):
    fp32, int8 = models
    server = Server(fp32, tmp_path / "data").start()
    try:
        client = httpx.Client(base_url=server.url, timeout=30)
        refused = client.post("/admin/model", data={"path": str(int8)})
        assert refused.status_code == 422
        assert refused.json()["error"] == "invalid_model"
        assert "DISAGREES with its fp32 reference" in refused.json()["detail"]
        assert client.get("/model").json()["version"] == "toy-1"
    finally:
        server.stop()
