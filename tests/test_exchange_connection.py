"""What a plugin's connection declares instead of coding (stream names, subscribe batches) and the
shared readers and signature its parsers and auth use."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from realtrade_core.errors import ConfigurationError, WebSocketContractError
from realtrade_core.events import Side
from realtrade_core.validation import MalformedMessage, decimal_or_zero, known, optional_decimal, reading
from realtrade_core.websocket import ExchangeConnection
from realtrade_core.websocket.contract import store_contract_problems


class Toy(ExchangeConnection):
    exchange = "toy"
    stream_names = {"bar": "candles:{interval}:{id}", "trade": "{id_lower}.trades"}  # noqa: RUF012
    intervals = {"1m": "M1", "1h": "H1"}  # noqa: RUF012
    streams_per_request = 2

    def stream_request(self, op, streams):
        return {"do": op, "topics": streams, "n": next(self._request_ids)}

    def parse(self, message):
        return ()


def test_stream_names_come_from_the_declared_templates():
    assert Toy.stream_name("bar", {"id": "BTCUSDT"}, "1h") == "candles:H1:BTCUSDT"
    assert Toy.stream_name("trade", "BTCUSDT") == "btcusdt.trades"
    with pytest.raises(ConfigurationError, match=r"toy has no '5m' kline stream; use one of 1m, 1h"):
        Toy.stream_name("bar", "BTCUSDT", "5m")
    with pytest.raises(ConfigurationError, match=r"unknown stream kind 'book'; use 'bar' or 'trade'"):
        Toy.stream_name("book", "BTCUSDT")


def test_streams_are_subscribed_in_batches_of_the_declared_size():
    ws = Toy(url="ws://127.0.0.1:1/")
    assert list(ws.subscribe_messages(("a", "b", "c"))) == [
        {"do": "subscribe", "topics": ["a", "b"], "n": 1},
        {"do": "subscribe", "topics": ["c"], "n": 2},
    ]
    assert list(ws.unsubscribe_messages(("a",))) == [{"do": "unsubscribe", "topics": ["a"], "n": 3}]


def test_a_connection_without_its_subscribe_request_or_stream_names_is_named():
    class NoRequest(ExchangeConnection):
        exchange = "toy"

        def parse(self, message):
            return ()

    assert NoRequest.missing_members() == ["stream_request"]
    with pytest.raises(WebSocketContractError, match=r"stream_request\(self, op, streams\)"):
        NoRequest(url="ws://127.0.0.1:1/")
    problems = store_contract_problems(NoRequest, public_stream=True)
    assert any("no stream_names" in p for p in problems)
    assert not any("stream_names" in p for p in store_contract_problems(Toy, public_stream=True))


def test_readers_for_values_exchanges_leave_empty_or_name_by_table():
    assert decimal_or_zero("") == decimal_or_zero(None) == Decimal(0)
    assert decimal_or_zero("1.50") == Decimal("1.50")
    assert optional_decimal("0.00000000") is None and optional_decimal("") is None
    assert optional_decimal("-1") == Decimal(-1)  # garbage is kept for the event's check to refuse
    sides = {"BUY": Side.BUY, "SELL": Side.SELL}
    assert known(sides, "SELL", "side") is Side.SELL
    with pytest.raises(MalformedMessage, match=r"bad order message: unknown side 'HOLD'$"):
        reading("order", lambda: known(sides, "HOLD", "side"))
    with pytest.raises(MalformedMessage, match="unknown side"):
        reading("order", lambda: known(sides, json.loads("[1]"), "side"))  # not even hashable


def test_the_shared_request_signature_is_hex_hmac_sha256():
    from realtrade_core.credentials import hmac_hex

    signed = hmac_hex("key", "The quick brown fox jumps over the lazy dog")
    assert signed == "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
