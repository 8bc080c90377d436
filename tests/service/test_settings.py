"""service.settings: what the speed settings turn into."""

from __future__ import annotations

import pytest

from models.default import DEFAULT_INT8, DEFAULT_MODEL
from models.engine import EngineOptions
from service.gallery.availability import StoreOptions
from service.gallery.policy import IndexPolicy
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


def test_store_waits_from_the_environment(monkeypatch):
    monkeypatch.setenv("GAITLAB_STORE_TIMEOUT_S", "3.5")
    monkeypatch.setenv("GAITLAB_STORE_CHECK_S", "0.25")
    options = Settings.from_env().store_options
    assert options == StoreOptions(timeout_s=3.5, check_s=0.25)
    assert options.retry_after_s == 1
    assert Settings().store_options == StoreOptions()  # 2 s, checked every 0.5 s
    for bad in ({"store_timeout_s": 0}, {"store_check_s": -1}, {"store_timeout_s": 600}):
        with pytest.raises(ValueError, match="store_"):
            Settings(**bad)
