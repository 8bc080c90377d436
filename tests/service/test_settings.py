"""service.settings: what the speed settings turn into."""

from __future__ import annotations

import pytest

from models.default import DEFAULT_INT8, DEFAULT_MODEL
from models.engine import EngineOptions
from service.gallery.index import IndexPolicy
from service.settings import Settings


@pytest.mark.skipif(not DEFAULT_INT8.is_file(), reason="this checkout ships no default model")
def test_precision_picks_the_shipped_variant():
    assert Settings(device="cpu").default_model() == DEFAULT_INT8
    assert Settings(device="cpu", precision="fp32").default_model() == DEFAULT_MODEL
    assert Settings(device="cpu", precision="int8").default_model() == DEFAULT_INT8


def test_speed_settings_from_the_environment(monkeypatch):
    for name, value in {
        "GAITLAB_THREADS": "3",
        "GAITLAB_SPIN": "false",
        "GAITLAB_INDEX": "approximate",
        "GAITLAB_APPROXIMATE_FROM": "7000",
        "GAITLAB_NPROBE": "8",
        "GAITLAB_SEARCH_THREADS": "2",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert settings.engine_options == EngineOptions("auto", 3, False)
    assert settings.index_policy == IndexPolicy("approximate", 7000, 8, 2)
    with pytest.raises(ValueError, match="index"):
        Settings(index="hnsw")
