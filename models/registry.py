"""Nets by name. A net is one class in one file, with its options schema beside it.

A net class has a ``config_class`` (a dataclass: its options, with defaults) and is built as
``NetClass(config)``. It is found by the name a config gives:

- a built-in name (``baseline``): the class registered with ``@register("baseline")`` in
  ``models/nets/baseline.py`` — the file name is the net's name, so adding a net adds one file;
- an import path (``my_pkg.my_net:MyNet``): a net in the user's own module, no registration;
- an entry point of the ``gaitlab.nets`` group, for nets installed by another distribution.

Options are checked against the net's own schema: one the net does not have is an error that
names the net and lists what it has; values are type-checked (``Literal`` fields included).
Importing this module stays free of torch: net modules are imported on first use.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from importlib.metadata import entry_points
from typing import Any

from models.plugins import import_object, validate_options

ENTRY_POINT_GROUP = "gaitlab.nets"
BUILT_IN_PACKAGE = "models.nets"
DERIVED_OPTIONS = ("num_classes",)  # set by the trainer from the data, never by a config

_REGISTRY: dict[str, type] = {}


def register(name: str):
    """Class decorator for a built-in net: ``@register("baseline")`` in models/nets/baseline.py."""

    def decorate(net_class: type) -> type:
        _check_net_class(net_class, name)
        _REGISTRY[name] = net_class
        return net_class

    return decorate


def _check_net_class(net_class: Any, name: str) -> None:
    config_class = getattr(net_class, "config_class", None)
    if not (isinstance(net_class, type) and dataclasses.is_dataclass(config_class)):
        raise ValueError(
            f"net {name!r} must be a class with a dataclass `config_class` (its options)"
        )


def _built_in_names() -> list[str]:
    package = importlib.import_module(BUILT_IN_PACKAGE)
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.ispkg)


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def net_names() -> list[str]:
    """Built-in nets and installed entry points (import paths are not listed)."""
    return sorted({*_built_in_names(), *_entry_points()})


def resolve_net(name: str) -> type:
    """The net class a config's ``model.name`` means; ``ValueError`` when there is none."""
    if ":" in name:
        return _import_path(name)
    if name in _built_in_names():
        importlib.import_module(f"{BUILT_IN_PACKAGE}.{name}")
        if name not in _REGISTRY:
            raise ValueError(
                f"models/nets/{name}.py registers no net named {name!r} (@register({name!r}))"
            )
        return _REGISTRY[name]
    if name in (points := _entry_points()):
        net_class = points[name].load()
        _check_net_class(net_class, name)
        return net_class
    raise ValueError(
        f"unknown net {name!r}; known nets: {', '.join(net_names())}, "
        "or a class of your own as 'module.path:ClassName'"
    )


def _import_path(path: str) -> type:
    net_class = import_object(path, "net")
    _check_net_class(net_class, path)
    return net_class


def option_names(name: str) -> list[str]:
    """The options net ``name`` accepts from a config (its schema's fields, less derived ones)."""
    config_class = resolve_net(name).config_class
    return [f.name for f in dataclasses.fields(config_class) if f.name not in DERIVED_OPTIONS]


def build_config(name: str, **options: Any):
    """Net ``name``'s config dataclass from ``options``, checked against its schema.

    An option the net does not have, or a value of the wrong type, raises ``ValueError`` naming
    the net and the option.
    """
    config_class = resolve_net(name).config_class
    return validate_options("net", name, config_class, options, hidden=DERIVED_OPTIONS)


def options_dict(config: Any) -> dict:
    """A config dataclass as plain JSON-ready values (tuples become lists)."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in dataclasses.asdict(config).items()
    }


def complete_options(name: str, options: dict, **derived: Any) -> dict:
    """All of net ``name``'s options, defaults filled in, plus the ``derived`` values (e.g.
    ``num_classes``) its schema has a field for; JSON-ready."""
    config_class = resolve_net(name).config_class
    fields = {f.name for f in dataclasses.fields(config_class)}
    merged = {**options, **{k: v for k, v in derived.items() if k in fields}}
    return options_dict(build_config(name, **merged))


def create_model(name: str, **options: Any):
    """Build net ``name`` from its options, e.g. ``create_model("baseline", channels=…)``."""
    return resolve_net(name)(build_config(name, **options))
