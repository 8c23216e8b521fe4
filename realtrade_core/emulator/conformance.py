"""Field-by-field comparison of an emulator's payload with an exchange's documented example.

A dialect's tests keep the exchange's documented payloads as fixtures and check every REST answer
and stream message against them: the same keys in every object, the same JSON type for every
value, recursively through lists and objects. What the documentation allows beyond one example is
declared next to it, never guessed:

- ``optional``: fields that may be absent (documented as conditional, or for other categories);
- ``absent``: fields that must *not* be there (documented as missing for this market type);
- ``maps``: objects whose keys are data (``{"USDT": "0.1"}``): any keys, each value shaped like
  the example's first value;
- ``types``: fields whose documented type is a union (``["string", "null"]``);
- ``empty_ok``: lists that may be empty (otherwise an empty list fails: nothing would be checked);
- ``tuples``: lists of objects compared position by position (Binance's ``filters``: each filter
  has its own shape).

Paths name fields from the root with dots, ``[]`` for "every element of a list":
``result.list[].cumFeeDetail``; a top-level list's elements are ``[]``. A list whose documented
elements differ in type (a kline row ``[int, "str", ...]``) is a tuple: compared position by
position, length included (its positions are ``[0]``, ``[1]``...). Otherwise every element is
compared with the first documented one.

A fixture file is JSON ``{"source": ..., "example": ..., "optional": [...], "absent": [...],
"maps": [...], "types": {...}, "empty_ok": [...], "tuples": [...]}``; :func:`check_fixture` compares a payload
with one and :func:`load_fixture` reads one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DocumentedShape", "check_fixture", "json_type", "load_fixture", "shape_mismatches"]


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value: object, array, string, integer, number, boolean, null."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is an int in Python
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    raise TypeError(f"not a JSON value: {value!r} ({type(value).__name__})")


@dataclass(frozen=True)
class DocumentedShape:
    """A documented example and what the documentation allows around it (see the module docstring)."""

    example: Any
    optional: frozenset[str] = frozenset()
    absent: frozenset[str] = frozenset()
    maps: frozenset[str] = frozenset()
    types: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    empty_ok: frozenset[str] = frozenset()
    tuples: frozenset[str] = frozenset()
    source: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DocumentedShape:
        unknown = set(data) - {"source", "example", "optional", "absent", "maps", "types", "empty_ok", "tuples",
                               "endpoint", "description"}  # fmt: skip
        if unknown:
            raise ValueError(f"unknown fixture keys {sorted(unknown)}")
        if "example" not in data:
            raise ValueError("a documented shape needs an 'example'")
        return cls(
            example=data["example"],
            optional=frozenset(data.get("optional", ())),
            absent=frozenset(data.get("absent", ())),
            maps=frozenset(data.get("maps", ())),
            types={path: tuple(kinds) for path, kinds in data.get("types", {}).items()},
            empty_ok=frozenset(data.get("empty_ok", ())),
            tuples=frozenset(data.get("tuples", ())),
            source=str(data.get("source", "")),
        )


def load_fixture(path: str | Path) -> DocumentedShape:
    """Read a documented-shape fixture file (JSON, see the module docstring)."""
    with open(path, encoding="utf-8") as handle:
        return DocumentedShape.from_dict(json.load(handle))


def check_fixture(actual: Any, shape: DocumentedShape) -> list[str]:
    """Every way ``actual`` differs from the documented shape; empty when it conforms."""
    return shape_mismatches(
        actual,
        shape.example,
        optional=shape.optional,
        absent=shape.absent,
        maps=shape.maps,
        types=shape.types,
        empty_ok=shape.empty_ok,
        tuples=shape.tuples,
    )


def shape_mismatches(
    actual: Any,
    documented: Any,
    *,
    optional: Iterable[str] = (),
    absent: Iterable[str] = (),
    maps: Iterable[str] = (),
    types: Mapping[str, Iterable[str]] | None = None,
    empty_ok: Iterable[str] = (),
    tuples: Iterable[str] = (),
) -> list[str]:
    """Every difference in keys and JSON types between ``actual`` and the ``documented`` example."""
    rules = _Rules(
        frozenset(optional),
        frozenset(absent),
        frozenset(maps),
        {path: tuple(kinds) for path, kinds in (types or {}).items()},
        frozenset(empty_ok),
        frozenset(tuples),
    )
    problems: list[str] = []
    rules.compare(actual, documented, "", "", problems)
    return problems


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


@dataclass(frozen=True)
class _Rules:
    optional: frozenset[str]
    absent: frozenset[str]
    maps: frozenset[str]
    types: Mapping[str, tuple[str, ...]]
    empty_ok: frozenset[str]
    tuples: frozenset[str]

    def compare(self, actual: Any, documented: Any, spec: str, where: str, problems: list[str]) -> None:
        """``spec`` is the index-free path the rules use, ``where`` the concrete one reported."""
        shown = where or "(root)"
        allowed = self.types.get(spec) or (json_type(documented),)
        kind = json_type(actual)
        if kind == "integer" and "number" in allowed:
            kind = "number"  # a whole number where a decimal one is documented is still a number
        if kind not in allowed:
            problems.append(f"{shown}: {' or '.join(allowed)} documented, got {kind} ({actual!r:.60})")
            return
        if kind != json_type(documented):
            return  # an allowed alternative type (e.g. null): nothing below it to compare
        if kind == "object":
            self._object(actual, documented, spec, where, problems)
        elif kind == "array":
            self._array(actual, documented, spec, where, problems)

    def _object(self, actual: Mapping[str, Any], documented: Mapping[str, Any], spec: str, where: str,
                problems: list[str]) -> None:  # fmt: skip
        if spec in self.maps:
            if not documented:
                return
            model = next(iter(documented.values()))
            for key, value in actual.items():
                self.compare(value, model, spec + ".*", _child(where, key), problems)
            return
        for key in sorted(set(actual) | set(documented)):
            child_spec, child_where = _child(spec, key), _child(where, key)
            if child_spec in self.absent:
                if key in actual:
                    problems.append(f"{child_where}: present, but documented as absent here")
                continue
            if key not in documented:
                if key in actual and child_spec not in self.optional:
                    problems.append(f"{child_where}: not a documented field")
                continue
            if key not in actual:
                if child_spec not in self.optional:
                    problems.append(f"{child_where}: documented field missing")
                continue
            self.compare(actual[key], documented[key], child_spec, child_where, problems)

    def _array(self, actual: list[Any], documented: list[Any], spec: str, where: str, problems: list[str]) -> None:
        shown = where or "(root)"
        if not documented:
            return  # documented empty: no element shape to hold the answer to
        element_spec = spec + "[]"
        if spec in self.tuples or _is_tuple(documented):
            if len(actual) != len(documented):
                problems.append(f"{shown}: {len(documented)} positions documented, got {len(actual)}")
                return
            for index, (value, model) in enumerate(zip(actual, documented, strict=True)):
                self.compare(value, model, f"{spec}[{index}]", f"{where}[{index}]", problems)
            return
        if not actual:
            if spec not in self.empty_ok:
                problems.append(f"{shown}: empty list, so its elements could not be checked")
            return
        for index, value in enumerate(actual):
            self.compare(value, documented[0], element_spec, f"{where}[{index}]", problems)


def _is_tuple(documented: list[Any]) -> bool:
    """A documented list whose elements have different JSON types is a fixed-position record."""
    return len({json_type(item) for item in documented}) > 1
