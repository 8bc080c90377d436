"""What nets and losses share as plug-ins: found by an import path, configured by a dataclass.

``import_object("my_pkg.my_net:MyNet")`` imports a user's class; ``validate_options`` builds a
plug-in's options dataclass from a config's keys, with errors that name the plug-in.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any


def import_object(path: str, kind: str) -> Any:
    """The object named ``module.path:Name``; ``ValueError`` (naming the ``kind``) otherwise."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{kind} {path!r}: an import path is 'module.path:Name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"{kind} {path!r}: cannot import {module_name!r}: {error}") from error
    if not hasattr(module, attribute):
        raise ValueError(f"{kind} {path!r}: module {module_name!r} has no {attribute!r}")
    return getattr(module, attribute)


def validate_options(
    kind: str, name: str, schema: type, options: dict, hidden: tuple[str, ...] = ()
) -> Any:
    """``schema(**options)`` with types checked; an option the schema lacks, or a bad value,
    raises ``ValueError`` naming the ``kind`` and ``name`` (``hidden`` fields are not listed)."""
    from pydantic import TypeAdapter, ValidationError

    known = {f.name for f in dataclasses.fields(schema)}
    unknown = sorted(set(options) - known)
    if unknown:
        listed = ", ".join(sorted(known - set(hidden))) or "none"
        raise ValueError(
            f"{kind} {name!r} has no option {', '.join(map(repr, unknown))}; its options: {listed}"
        )
    try:
        return TypeAdapter(schema).validate_python(options)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ValueError(f"{kind} {name!r}: bad option value: {problems}") from None
