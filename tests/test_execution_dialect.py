"""The execution dialect: what a plugin declares about its exchange's orders, checked when it loads,
and what the core reads from it (error classes, waits, the exchanges' own rules)."""

from __future__ import annotations

import time

import ccxt
import pytest
from fakedist import make_dist, valid_plugin

from realtrade_core import PluginValidationError, load_exchange
from realtrade_core.broker import Broker
from realtrade_core.execution import ErrorKind, ExecutionDialect, dialect_problems
from realtrade_core.plugins import PluginHost

_DIALECT = """
from realtrade_core.execution import ExecutionDialect


class DialExecution(ExecutionDialect):
{members}
"""


def plugin_source(members: str, execution: str) -> str:
    """fakedist's valid plugin "dial", with the core Broker and this execution dialect."""
    source = valid_plugin("dial") + _DIALECT.format(members=members)
    return source.replace("broker=DialBroker, feed=DialData)", f"broker=Broker, feed=DialData, execution={execution})")


@pytest.fixture
def site(tmp_path, monkeypatch):
    import sys

    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("dial_plugin", None)


def load(site, members: str = "    pass", execution: str = "DialExecution()"):
    source = plugin_source(members, execution)
    make_dist(site, "dial-dist", "1.0", {"dial": "dial_plugin"}, {"dial_plugin": source})
    return PluginHost(environ={}).load_exchange("dial")


@pytest.mark.parametrize(
    ("members", "execution", "named"),
    [
        ("    client_order_id_field = ''", "DialExecution()", "client_order_id_field must be a non-empty str"),
        ("    fetch_order_params = ['acknowledged']", "DialExecution()", "fetch_order_params must be a mapping"),
        ("    bracket_exits = 'both'", "DialExecution()", "bracket_exits must be one of 'held', 'oco', 'conditional'"),
        ("    stop_direction_from_market = 'yes'", "DialExecution()", "stop_direction_from_market must be a bool"),
        ("    classify = None", "DialExecution()", "classify must be a method"),
        ("    bracket_exits = 'oco'", "DialExecution()", "bracket_exits='oco' needs create_oco_orders()"),
        ("    pass", "DialExecution", "DialExecution is a class; give an instance: execution=DialExecution()"),
        ("    pass", "object()", "is not a realtrade_core.execution.ExecutionDialect"),
    ],
    ids=["empty-id-field", "params-not-mapping", "unknown-exits", "not-bool", "classify-gone", "oco-without-lists",
         "a-class", "not-a-dialect"],
)  # fmt: skip
def test_a_wrong_dialect_is_refused_at_registration_naming_the_piece(site, members, execution, named):
    with pytest.raises(PluginValidationError) as info:
        load(site, members, execution)
    message = str(info.value)
    assert "dial-dist 1.0" in message and "execution=" in message and named in message
    assert "see realtrade_core.execution" in message


def test_a_dialect_left_out_is_the_default_one(tmp_path, monkeypatch):
    import sys

    bare = valid_plugin("dial").replace("broker=DialBroker", "broker=Broker")
    make_dist(tmp_path, "dial-dist", "1.0", {"dial": "dial_plugin"}, {"dial_plugin": bare})
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        spec = PluginHost(environ={}).load_exchange("dial")
    finally:
        sys.modules.pop("dial_plugin", None)
    assert type(spec.execution) is ExecutionDialect and dialect_problems(spec.execution) == []
    assert spec.broker is Broker


def test_default_classification_follows_ccxt_errors():
    dialect = ExecutionDialect()
    assert dialect.classify(ccxt.RateLimitExceeded("429")) is ErrorKind.RATE_LIMITED
    assert dialect.classify(ccxt.DDoSProtection("418")) is ErrorKind.RATE_LIMITED
    assert dialect.classify(ccxt.RequestTimeout("slow")) is ErrorKind.UNKNOWN_OUTCOME
    assert dialect.classify(ccxt.ExchangeNotAvailable("503")) is ErrorKind.UNKNOWN_OUTCOME
    assert dialect.classify(ccxt.BadResponse("garbled")) is ErrorKind.UNKNOWN_OUTCOME
    assert dialect.classify(ccxt.InsufficientFunds("-2010")) is ErrorKind.INSUFFICIENT_FUNDS
    assert dialect.classify(ccxt.OrderImmediatelyFillable("-2010 would trigger")) is ErrorKind.STOP_CROSSED
    assert dialect.classify(ccxt.InvalidOrder("bad price")) is ErrorKind.REFUSED
    assert dialect.retry_after(ccxt.RateLimitExceeded("429"), {"Retry-After": "3"}, time.time() * 1000) == 3
    assert dialect.cancel_param_sets("stop") == [{}] and not dialect.has_oco_orders


def test_the_exchanges_dialects_say_what_their_exchanges_do():
    binance, bybit = load_exchange("binance").execution, load_exchange("bybit").execution
    assert (binance.bracket_exits, binance.has_oco_orders) == ("oco", True)
    assert binance.client_order_id_field == "clientOrderId" and binance.cancel_param_sets("stop") == [{}]
    assert (bybit.bracket_exits, bybit.stop_direction_from_market) == ("conditional", True)
    assert bybit.client_order_id_field == "orderLinkId" and dict(bybit.fetch_order_params) == {"acknowledged": True}
    assert bybit.cancel_param_sets("stop_limit") == [{"trigger": True}, {}] and bybit.cancel_param_sets("limit") == [{}]
    crossed = ccxt.InvalidOrder('bybit {"retCode":110093,"retMsg":"expect Falling"}')
    assert bybit.classify(crossed) is ErrorKind.STOP_CROSSED
    assert binance.classify(crossed) is ErrorKind.REFUSED  # another exchange's code means nothing to Binance
    assert bybit.classify(ccxt.InsufficientFunds("170131")) is ErrorKind.INSUFFICIENT_FUNDS


def test_a_live_broker_takes_its_bracket_exits_from_the_dialect_unless_told(exchange):
    store = load_exchange(exchange).store(venue="mainnet")  # nothing is sent: paper brokers
    expected = {"binance": "oco", "bybit": "conditional"}[exchange]
    assert store.getbroker().bracket_exits == expected
    assert store.getbroker(bracket_exits="held").bracket_exits == "held"
    assert store.getbroker().dialect is load_exchange(exchange).execution
