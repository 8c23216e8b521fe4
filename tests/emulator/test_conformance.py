"""The documented-shape comparison (realtrade_core.emulator.conformance) finds every difference."""

from __future__ import annotations

import json

import pytest

from realtrade_core.emulator.conformance import (
    DocumentedShape,
    check_fixture,
    json_type,
    load_fixture,
    shape_mismatches,
)

ORDER = {"orderId": "1", "qty": "0.5", "positionIdx": 0, "reduceOnly": False, "fee": {"USDT": "0.1"}}


def test_identical_shapes_with_other_values_conform():
    actual = {"orderId": "77", "qty": "9", "positionIdx": 1, "reduceOnly": True, "fee": {"USDT": "3"}}
    assert shape_mismatches(actual, ORDER) == []


def test_json_types_are_told_apart():
    assert [json_type(v) for v in (None, True, 1, 1.5, "x", {}, [])] == [
        "null", "boolean", "integer", "number", "string", "object", "array",
    ]  # fmt: skip
    assert shape_mismatches({"n": 1}, {"n": 1.5}) == []  # a whole number is still a number
    assert shape_mismatches({"n": 1.5}, {"n": 1}) == ["n: integer documented, got number (1.5)"]


def test_a_missing_an_extra_and_a_retyped_field_are_each_reported():
    actual = {"orderId": 1, "qty": "0.5", "positionIdx": 0, "fee": {"USDT": "0.1"}, "tpslMode": ""}
    assert shape_mismatches(actual, ORDER) == [
        "orderId: string documented, got integer (1)",
        "reduceOnly: documented field missing",
        "tpslMode: not a documented field",
    ]


def test_optional_absent_maps_and_union_types_are_declared_rules():
    documented = {"a": "x", "b": "y", "fee": {"BNB": "0.1"}, "asset": "BNB"}
    actual = {"a": "x", "fee": {"USDT": "1", "BTC": "2"}, "asset": None}
    rules = {"optional": ["b"], "maps": ["fee"], "types": {"asset": ["string", "null"]}}
    assert shape_mismatches(actual, documented, **rules) == []
    assert shape_mismatches({**actual, "fee": {"USDT": 1}}, documented, **rules) == [
        "fee.USDT: string documented, got integer (1)"
    ]
    assert shape_mismatches({**actual, "c": ""}, documented, absent=["c"], **rules) == [
        "c: present, but documented as absent here"
    ]


def test_lists_are_checked_element_by_element_and_must_not_be_empty():
    documented = {"list": [ORDER]}
    bad = {"list": [ORDER, {**ORDER, "qty": 0.5}]}
    assert shape_mismatches(bad, documented) == ["list[1].qty: string documented, got number (0.5)"]
    assert shape_mismatches({"list": []}, documented) == ["list: empty list, so its elements could not be checked"]
    assert shape_mismatches({"list": []}, documented, empty_ok=["list"]) == []
    assert shape_mismatches([{"k": 1}], [{"k": "1"}], optional=[]) == ["[0].k: string documented, got integer (1)"]


def test_a_list_of_mixed_types_is_a_tuple_compared_by_position():
    row = [1499040000000, "0.0163", "0.8", 308]
    assert shape_mismatches([1, "2", "3", 4], row) == []
    assert shape_mismatches([1, "2", 3, 4], row) == ["[2]: string documented, got integer (3)"]
    assert shape_mismatches([1, "2", "3"], row) == ["(root): 4 positions documented, got 3"]
    assert shape_mismatches([[1, "2", "3", 4]], [row]) == []
    filters = [{"filterType": "PRICE_FILTER", "tickSize": "0.01"}, {"filterType": "ICEBERG_PARTS", "limit": 10}]
    assert shape_mismatches({"f": filters}, {"f": filters}, tuples=["f"]) == []
    assert shape_mismatches({"f": filters[:1]}, {"f": filters}, tuples=["f"]) == ["f: 2 positions documented, got 1"]


def test_fixture_files_round_trip(tmp_path):
    path = tmp_path / "order.json"
    path.write_text(json.dumps({"source": "docs", "example": ORDER, "optional": ["qty"], "maps": ["fee"]}))
    shape = load_fixture(path)
    assert isinstance(shape, DocumentedShape) and shape.source == "docs"
    assert check_fixture({k: v for k, v in ORDER.items() if k != "qty"}, shape) == []
    with pytest.raises(ValueError, match="unknown fixture keys"):
        DocumentedShape.from_dict({"example": {}, "optinal": []})
