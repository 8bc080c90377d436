"""Pictures of clips: the GEI and frame strip (known answers), and their endpoints on a real
server — PNG content type and size, the same keys as the gallery, 404 for unknown or deleted
samples, the probe's pictures in identify/verify answers, and the subject filter."""

from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from service.pictures import PictureCache, gei, render, strip
from tests.service.live_server import ADMIN_KEY, CLIENT_KEY, keyed_toy_server
from tests.service.test_operations_e2e import aligned_clip


def test_gei_is_the_mean_frame_and_the_strip_spaces_frames_evenly():
    clip = np.zeros((4, 64, 44), np.uint8)
    clip[:2, :, :22] = 255  # the left half lit in half of the frames
    energy = gei(clip)
    assert energy.shape == (64, 44)
    assert (energy[:, :22] == 128).all()
    assert (energy[:, 22:] == 0).all()
    long = np.stack([np.full((64, 44), t, np.uint8) for t in range(30)])
    frames = strip(long)
    assert frames.shape == (64, 12 * 44 + 11 * 2)
    assert [int(frames[0, k * 46]) for k in range(12)] == [round(t) for t in np.linspace(0, 29, 12)]
    assert strip(long[:3]).shape == (64, 3 * 44 + 2 * 2)


def test_the_cache_renders_once_and_forgets_on_request():
    loads = []
    cache = PictureCache(capacity=2)

    def load():
        loads.append(1)
        return np.full((3, 64, 44), 200, np.uint8)

    first = cache.get(1, "gei", load)
    assert cache.get(1, "gei", load) == first
    assert len(loads) == 1
    assert Image.open(io.BytesIO(first)).size == (44, 64)
    cache.get(2, "gei", load)
    cache.get(3, "gei", load)  # over capacity: the least recently used goes
    cache.get(1, "gei", load)
    assert len(loads) == 4
    cache.forget([1, 3])
    assert len(cache) == 0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = keyed_toy_server(tmp_path_factory.mktemp("pictures"))
    yield running
    running.stop()


def png_size(data: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.size


def test_sample_pictures_over_http(server):
    admin = httpx.Client(base_url=server.url, timeout=30, headers={"X-API-Key": ADMIN_KEY})
    client = httpx.Client(base_url=server.url, timeout=30, headers={"X-API-Key": CLIENT_KEY})
    sample = admin.post(
        "/gallery/subjects/walker/samples", files={"clip": ("c.npy", aligned_clip(2, 20))}
    ).json()
    assert sample["created_at"] > 1.7e9
    gei_png = client.get(f"/gallery/samples/{sample['id']}/gei.png")
    assert gei_png.status_code == 200
    assert gei_png.headers["content-type"] == "image/png"
    assert gei_png.headers["cache-control"] == "private, max-age=300"
    assert png_size(gei_png.content) == (44, 64)
    assert png_size(client.get(f"/gallery/samples/{sample['id']}/strip.png").content) == (
        12 * 44 + 11 * 2,
        64,
    )
    expected = render(np.load(io.BytesIO(aligned_clip(2, 20))), "gei")
    assert gei_png.content == expected  # aligned input passes normalisation unchanged

    keyless = httpx.get(f"{server.url}/gallery/samples/{sample['id']}/gei.png")
    assert keyless.status_code == 401
    assert keyless.json()["error"] == "missing_api_key"
    missing = client.get("/gallery/samples/999999/gei.png")
    assert (missing.status_code, missing.json()["error"]) == (404, "sample_not_found")
    assert client.get("/gallery/samples/0/gei.png").status_code == 422

    admin.delete("/gallery/subjects/walker")
    gone = client.get(f"/gallery/samples/{sample['id']}/gei.png")
    assert gone.status_code == 404  # the cached picture went with the sample


def test_identify_and_verify_return_the_probes_pictures_on_request(server):
    admin = httpx.Client(base_url=server.url, timeout=30, headers={"X-API-Key": ADMIN_KEY})
    admin.post("/gallery/subjects/p1/samples", files={"clip": ("c.npy", aligned_clip(1))})
    plain = admin.post("/identify", files={"clip": ("c.npy", aligned_clip(1))}).json()
    assert plain["probe"] is None
    answer = admin.post(
        "/identify", params={"pictures": "true"}, files={"clip": ("c.npy", aligned_clip(1))}
    ).json()
    assert answer["hits"][0]["subject_id"] == "p1"
    for kind, size in (("gei", (44, 64)), ("strip", (12 * 44 + 11 * 2, 64))):
        prefix, _, data = answer["probe"][kind].partition(",")
        assert prefix == "data:image/png;base64"
        assert png_size(base64.b64decode(data)) == size
    verified = admin.post(
        "/verify",
        params={"pictures": "true"},
        files={"clip": ("c.npy", aligned_clip(1))},
        data={"subject_id": "p1"},
    ).json()
    assert verified["accepted"] is True
    assert verified["probe"]["gei"].startswith("data:image/png;base64,")


def test_subjects_filter_by_id(server):
    admin = httpx.Client(base_url=server.url, timeout=30, headers={"X-API-Key": ADMIN_KEY})
    names = ["anna_1", "anna_2", "ben", "x%y"]
    files = [("clips", (f"{n}.npy", aligned_clip(n))) for n in range(len(names))]
    manifest = json.dumps([{"subject_id": n} for n in ["anna_1", "anna_2", "ben", "xy"]])
    assert (
        admin.post("/gallery/samples", files=files, data={"manifest": manifest}).status_code == 201
    )

    def ids(q: str) -> list[str]:
        page = admin.get("/gallery/subjects", params={"q": q, "limit": 100}).json()
        assert page["total"] == len(page["items"])
        return [item["id"] for item in page["items"]]

    assert ids("ANNA") == ["anna_1", "anna_2"]
    assert ids("a_") == ["anna_1", "anna_2"]  # "_" is a character, not a wildcard
    assert ids("%") == []  # and "%" too
    assert "ben" in ids("")
