"""Explicit registry of nets: ``@register(name, ConfigClass)`` on each net, one factory.

Net modules are imported by name on first use (``NET_MODULES``), so importing ``models`` stays
free of torch.
"""

from __future__ import annotations

import importlib
from dataclasses import fields
from typing import Any

NET_MODULES = {"baseline": "models.baseline", "convlstm_fusion": "models.convlstm_fusion"}

_REGISTRY: dict[str, tuple[type, type]] = {}


def register(name: str, config_class: type):
    def decorate(net_class: type) -> type:
        _REGISTRY[name] = (net_class, config_class)
        return net_class

    return decorate


def _entry(name: str) -> tuple[type, type]:
    if name not in NET_MODULES:
        raise ValueError(f"unknown net {name!r}; known nets: {', '.join(sorted(NET_MODULES))}")
    importlib.import_module(NET_MODULES[name])
    return _REGISTRY[name]


def net_names() -> list[str]:
    return sorted(NET_MODULES)


def build_config(name: str, **options: Any):
    """The config dataclass of net ``name``; an unknown option raises ``ValueError``."""
    _, config_class = _entry(name)
    known = {f.name for f in fields(config_class)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown option(s) for {name}: {', '.join(unknown)}")
    if "channels" in options:
        options["channels"] = tuple(options["channels"])
    return config_class(**options)


def create_model(name: str, **options: Any):
    """Build net ``name`` from its config options, e.g. ``create_model("baseline", channels=…)``."""
    net_class, _ = _entry(name)
    return net_class(build_config(name, **options))
