"""Registration names the missing piece of every contract a plugin registers: Store, Data, Broker,
execution dialect, WebSocket and emulator dialect (docs/plugins.md lists each contract's parts).

Each case is fakedist's valid plugin with one piece taken out or broken; the error must name the
distribution, the ExchangeSpec field and the piece. (The execution dialect's every member is
covered in tests/test_execution_dialect.py, the WebSocket's store calls in tests/test_plugins.py.)
"""

from __future__ import annotations

import sys

import pytest
from fakedist import make_dist, valid_plugin

from realtrade_core import PluginValidationError
from realtrade_core.plugins import PluginHost

_WEBSOCKET = """
from realtrade_core.websocket import ExchangeConnection


class PartWebSocket(ExchangeConnection):
    exchange = "part"
    stream_names = {"bar": "{id}@kline_{interval}"}
    intervals = {"1m": "1m"}

    @classmethod
    def for_store(cls, store, *, private, config=None):
        return cls(url="ws://127.0.0.1:9/ws")

    def stream_request(self, op, streams):
        return {"op": op, "args": streams}
{members}
"""
_PARSE = """
    def parse(self, message):
        return ()
"""
_DIALECT = """
from realtrade_core.emulator.dialect import EmulatorDialect


class PartDialect(EmulatorDialect):
{members}
"""
_COMPLETE_DIALECT = """    name = "part"
    order_paths = frozenset({("POST", "/api/order")})

    def routes(self):
        return []

    def urls(self, base_http, base_ws):
        return {"rest": base_http}

    def ccxt_urls(self, base_http):
        return {"public": base_http}

    def error_body(self, status, retry_after):
        return status, {"error": status}
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("part_plugin", None)


def load(site, source: str):
    make_dist(site, "part-dist", "1.0", {"part": "part_plugin"}, {"part_plugin": source})
    return PluginHost(environ={}).load_exchange("part")


def with_spec(extra_source: str, **fields: str) -> str:
    """fakedist's valid plugin "part" with more source and more ExchangeSpec fields."""
    extra = "".join(f", {k}={v}" for k, v in fields.items())
    source = valid_plugin("part") + extra_source
    return source.replace("broker=PartBroker, feed=PartData)", f"broker=PartBroker, feed=PartData{extra})")


def refused(site, source: str) -> str:
    with pytest.raises(PluginValidationError) as info:
        load(site, source)
    message = str(info.value)
    assert "exchange 'part' from part-dist 1.0 is invalid" in message
    return message


def test_a_store_without_its_exchange_name_is_refused_naming_it(site):
    unnamed = "class PartStore(Store):\n    pass"
    source = valid_plugin("part").replace('class PartStore(Store):\n    exchange = "part"', unnamed)
    assert "store=part_plugin.PartStore lacks required member(s): exchange" in refused(site, source)


def test_a_feed_that_is_no_realtrade_data_is_refused_naming_the_base(site):
    source = valid_plugin("part").replace("class PartData(Data):", "class PartData:")
    assert "feed=part_plugin.PartData is not a subclass of realtrade_core.feed.Data" in refused(site, source)


def test_a_broker_that_is_no_realtrade_broker_is_refused_naming_the_base(site):
    source = valid_plugin("part").replace("class PartBroker(Broker):", "class PartBroker:")
    assert "broker=part_plugin.PartBroker is not a subclass of realtrade_core.broker.Broker" in refused(site, source)


def test_an_execution_dialect_that_is_not_one_is_refused(site):
    message = refused(site, with_spec("", execution="{}"))
    assert "execution={}: {} is not a realtrade_core.execution.ExecutionDialect" in message


def test_a_connection_without_its_parser_is_refused_naming_it(site):
    message = refused(site, with_spec(_WEBSOCKET.replace("{members}", ""), websocket="PartWebSocket"))
    assert "websocket=part_plugin.PartWebSocket lacks required member(s): parse" in message


def test_a_complete_connection_loads(site):
    spec = load(site, with_spec(_WEBSOCKET.replace("{members}", _PARSE), websocket="PartWebSocket"))
    assert spec.websocket.__name__ == "PartWebSocket"


@pytest.mark.parametrize(
    ("members", "missing"),
    [
        ("    pass", "name, order_paths, routes, urls, ccxt_urls, error_body"),
        (_COMPLETE_DIALECT.replace("    def routes(self):\n        return []\n", ""), "routes"),
        (_COMPLETE_DIALECT.replace('    name = "part"\n', ""), "name"),
        (_COMPLETE_DIALECT.replace('    order_paths = frozenset({("POST", "/api/order")})\n', ""), "order_paths"),
    ],
    ids=["nothing", "no-routes", "no-name", "no-order-paths"],
)
def test_an_emulator_dialect_without_a_required_piece_is_refused_naming_it(site, members, missing):
    message = refused(site, with_spec(_DIALECT.format(members=members), emulator="PartDialect"))
    assert f"emulator=part_plugin.PartDialect lacks required member(s): {missing}" in message


def test_a_complete_emulator_dialect_loads(site):
    spec = load(site, with_spec(_DIALECT.format(members=_COMPLETE_DIALECT), emulator="PartDialect"))
    assert spec.emulator.missing_members() == []


def test_a_dialect_that_is_no_emulator_dialect_is_refused_naming_the_base(site):
    message = refused(site, with_spec("\nclass NotADialect:\n    name = 'part'\n", emulator="NotADialect"))
    assert "emulator=part_plugin.NotADialect is not a subclass of realtrade_core.emulator.dialect.EmulatorDialect" in (
        message
    )
