"""Plugin discovery, loading and validation: what a user sees when plugins are good or broken."""

from __future__ import annotations

import logging

import pytest
from fakedist import make_dist, valid_plugin

from realtrade_core import (
    DuplicateExchangeError,
    ExchangeDisabledError,
    ExchangeNotFoundError,
    ExchangeSpec,
    OrderRequest,
    PluginLoadError,
    PluginValidationError,
    Veto,
    hookimpl,
)
from realtrade_core.plugins import PluginHost


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A fresh directory on sys.path where tests 'install' distributions."""
    import sys

    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:  # fake plugin modules must not leak between tests
        if name.endswith(("_plugin", "_ext")) or name.startswith("dup_"):
            del sys.modules[name]


def host(**environ: str) -> PluginHost:
    return PluginHost(environ=environ)


def test_a_third_party_plugin_is_listed_and_loads_by_name(site):
    make_dist(site, "acme-exchange", "2.3.0", {"acme": "acme_plugin"}, {"acme_plugin": valid_plugin("acme")})
    h = host()
    row = next(r for r in h.list_exchanges() if r.name == "acme")
    assert (row.distribution, row.version, row.status) == ("acme-exchange", "2.3.0", "installed")
    spec = h.load_exchange("acme")
    assert isinstance(spec, ExchangeSpec) and spec.store.__name__ == "AcmeStore"
    assert next(r for r in h.list_exchanges() if r.name == "acme").status == "loaded"


def test_names_are_case_insensitive(site):
    make_dist(site, "acme-exchange", "1.0", {"acme": "acme_plugin"}, {"acme_plugin": valid_plugin("acme")})
    assert host().load_exchange("ACME").name == "acme"


def test_unknown_exchange_lists_installed_ones_and_names_the_distribution(site):
    make_dist(site, "acme-exchange", "1.0", {"acme": "acme_plugin"}, {"acme_plugin": valid_plugin("acme")})
    with pytest.raises(ExchangeNotFoundError) as info:
        host().load_exchange("kraken")
    message = str(info.value)
    assert "'kraken'" in message and "acme" in message
    # No realtrade-kraken distribution exists: ccxt's generic adapter is offered instead.
    assert "pip install" not in message and "'ccxt:kraken'" in message


def test_a_misspelt_exchange_gets_the_name_meant_and_never_an_invented_distribution(site):
    make_dist(site, "acme-exchange", "1.0", {"acme": "acme_plugin"}, {"acme_plugin": valid_plugin("acme")})
    with pytest.raises(ExchangeNotFoundError) as info:
        host().load_exchange("acmee")
    assert "Did you mean 'acme'?" in str(info.value) and "pip install" not in str(info.value)
    nothing = PluginHost(eps=[], environ={})  # no exchange plugin installed
    with pytest.raises(ExchangeNotFoundError) as info:
        nothing.load_exchange("binanse")  # close to a published plugin that is not installed
    assert "Did you mean 'binance' (`pip install realtrade-binance`)?" in str(info.value)
    assert "realtrade-binanse" not in str(info.value)
    with pytest.raises(ExchangeNotFoundError, match=r"`pip install realtrade-bybit`"):
        nothing.load_exchange("bybit")


def test_an_unknown_ccxt_id_is_refused_without_a_pip_install():
    with pytest.raises(ExchangeNotFoundError) as info:
        host().load_exchange("ccxt:notanexchange")
    assert "ccxt has no exchange 'notanexchange'" in str(info.value) and "pip install" not in str(info.value)
    with pytest.raises(ExchangeNotFoundError, match="Did you mean 'ccxt:kraken'"):
        host().load_exchange("ccxt:krakn")


def test_plugin_that_raises_on_import_breaks_neither_listing_nor_other_plugins(site):
    make_dist(site, "broken-dist", "0.9", {"broken": "broken_plugin"}, {"broken_plugin": "raise RuntimeError('boom')"})
    make_dist(site, "acme-exchange", "1.0", {"acme": "acme_plugin"}, {"acme_plugin": valid_plugin("acme")})
    h = host()
    assert {"broken", "acme"} <= {r.name for r in h.list_exchanges()}
    with pytest.raises(PluginLoadError) as info:
        h.load_exchange("broken")
    message = str(info.value)
    assert "'broken'" in message and "broken-dist 0.9" in message and "boom" in message
    assert isinstance(info.value.__cause__, RuntimeError)
    assert h.load_exchange("acme").name == "acme"
    row = next(r for r in h.list_exchanges() if r.name == "broken")
    assert row.status == "error" and "boom" in row.error


def test_check_all_reports_each_plugin_status(site):
    make_dist(site, "broken-dist", "0.9", {"broken": "broken_plugin"}, {"broken_plugin": "import no_such_module_xyz"})
    make_dist(site, "acme-exchange", "1.0", {"acme": "acme_plugin"}, {"acme_plugin": valid_plugin("acme")})
    rows = {r.name: r for r in host().check_all()}
    assert rows["acme"].status == "loaded"
    assert rows["broken"].status == "error" and "no_such_module_xyz" in rows["broken"].error


def test_invalid_classes_are_rejected_naming_field_and_base_class(site):
    source = """
        from realtrade_core import ExchangeSpec, hookimpl

        class NotAStore:
            pass

        @hookimpl
        def realtrade_exchange():
            return ExchangeSpec(name="bad", store=NotAStore, broker=dict, feed=int)
    """
    make_dist(site, "bad-dist", "1.0", {"bad": "bad_plugin"}, {"bad_plugin": source})
    with pytest.raises(PluginValidationError) as info:
        host().load_exchange("bad")
    message = str(info.value)
    assert "bad-dist 1.0" in message
    assert "store=bad_plugin.NotAStore is not a subclass of realtrade_core.store.Store" in message
    assert "broker=builtins.dict" in message and "feed=builtins.int" in message


def test_required_member_left_unset_is_named(site):
    source = valid_plugin("lazy").replace(
        'class LazyData(Data):\n    exchange = "lazy"', "class LazyData(Data):\n    pass"
    )
    make_dist(site, "lazy-dist", "1.0", {"lazy": "lazy_plugin"}, {"lazy_plugin": source})
    with pytest.raises(PluginValidationError, match=r"feed=lazy_plugin.LazyData lacks required member\(s\): exchange"):
        host().load_exchange("lazy")


_WEBSOCKET_PLUGIN = """
from realtrade_core import Capabilities, ExchangeSpec, hookimpl
from realtrade_core.broker import Broker
from realtrade_core.feed import Data
from realtrade_core.store import Store
from realtrade_core.websocket import BaseWebSocket


class WsStore(Store):
    exchange = "ws"


class WsData(Data):
    exchange = "ws"


class WsBroker(Broker):
    exchange = "ws"


class WsStreams(BaseWebSocket):
    exchange = "ws"
    streams_in_url = True

    def url(self, streams):
        return "wss://example.invalid/" + "/".join(streams)

    def parse(self, message):
        return ()
{members}

@hookimpl
def realtrade_exchange():
    return ExchangeSpec(name="ws", store=WsStore, broker=WsBroker, feed=WsData, websocket=WsStreams,
                        capabilities=Capabilities(public_stream={public}))
"""
_FOR_STORE = """
    @classmethod
    def for_store(cls, store, *, private, config=None):
        return cls(config=config)
"""
_STREAM_NAME = """
    @classmethod
    def stream_name(cls, kind, market, timeframe=None):
        return market["id"]
"""


@pytest.mark.parametrize(
    ("members", "public", "named"),
    [
        (
            "",
            True,
            [
                "no for_store(store, *, private, config=None) -> BaseWebSocket (a classmethod)",
                "no stream_name(kind, market, timeframe=None) -> str (a classmethod)",
            ],
        ),
        (_FOR_STORE, True, ["no stream_name(kind, market, timeframe=None) -> str"]),
        (
            _FOR_STORE + _STREAM_NAME.replace("@classmethod\n    ", "").replace("(cls,", "(self,"),
            True,
            ["stream_name must be a classmethod stream_name(kind, market, timeframe=None) -> str"],
        ),
        (
            _FOR_STORE.replace("*, private,", "private_stream,") + _STREAM_NAME,
            True,
            ["for_store cannot be called as for_store(store, *, private, config=None) -> BaseWebSocket"],
        ),
    ],
    ids=["nothing", "no-stream-name", "instance-method", "wrong-signature"],
)
def test_a_websocket_class_without_what_the_store_calls_is_refused_naming_it(site, members, public, named):
    source = _WEBSOCKET_PLUGIN.format(members=members, public=public)
    make_dist(site, "ws-dist", "1.0", {"ws": "ws_plugin"}, {"ws_plugin": source})
    with pytest.raises(PluginValidationError) as info:
        host().load_exchange("ws")
    message = str(info.value)
    assert "ws-dist 1.0" in message and "websocket=ws_plugin.WsStreams" in message
    for piece in named:
        assert piece in message
    assert "realtrade_core.websocket.contract" in message  # where the contract is written down


def test_a_websocket_class_with_what_the_store_calls_loads(site):
    complete = _WEBSOCKET_PLUGIN.format(members=_FOR_STORE + _STREAM_NAME, public=True)
    make_dist(site, "ws-dist", "1.0", {"ws": "ws_plugin"}, {"ws_plugin": complete})
    assert host().load_exchange("ws").websocket.__name__ == "WsStreams"


def test_an_account_only_websocket_needs_no_stream_names(site):
    private_only = _WEBSOCKET_PLUGIN.format(members=_FOR_STORE, public=False)
    make_dist(site, "ws-dist", "1.0", {"ws": "ws_plugin"}, {"ws_plugin": private_only})
    assert host().load_exchange("ws").capabilities.public_stream is False


def test_for_store_must_give_a_connection(site):
    from realtrade_core.websocket.contract import open_connection

    class NotAConnection:
        @classmethod
        def for_store(cls, store, *, private, config=None):
            return object()

    store = type("S", (), {"exchange": "ws"})()
    with pytest.raises(PluginValidationError, match=r"NotAConnection.for_store returned object, not a .*BaseWebSocket"):
        open_connection(NotAConnection, store, private=False)


def test_registered_name_must_match_entry_point_name(site):
    make_dist(site, "acme-exchange", "1.0", {"acme": "acme_plugin"}, {"acme_plugin": valid_plugin("other")})
    with pytest.raises(PluginValidationError, match="registers name 'other' but is installed as 'acme'"):
        host().load_exchange("acme")


def test_duplicate_exchange_name_names_both_distributions(site):
    make_dist(site / "a", "first-dist", "1.0", {"dup": "dup_a"}, {"dup_a": valid_plugin("dup")})
    make_dist(site / "b", "second-dist", "2.0", {"dup": "dup_b"}, {"dup_b": valid_plugin("dup")})
    import sys

    sys.path[:0] = [str(site / "a"), str(site / "b")]
    try:
        h = host()
        rows = [r for r in h.list_exchanges() if r.name == "dup"]
        assert len(rows) == 2 and all(r.status == "error" for r in rows)
        with pytest.raises(DuplicateExchangeError) as info:
            h.load_exchange("dup")
        assert "first-dist 1.0" in str(info.value) and "second-dist 2.0" in str(info.value)
    finally:
        sys.path.remove(str(site / "a"))
        sys.path.remove(str(site / "b"))


def test_misspelled_hook_is_an_error(site):
    source = valid_plugin("typo") + "\n\n@hookimpl\ndef realtrade_pre_trad(request):\n    return None\n"
    make_dist(site, "typo-dist", "1.0", {"typo": "typo_plugin"}, {"typo_plugin": source})
    with pytest.raises(PluginValidationError) as info:
        host().load_exchange("typo")
    assert "realtrade_pre_trad" in str(info.value) and "typo-dist 1.0" in str(info.value)


def test_hook_returning_nothing_is_rejected(site):
    source = "from realtrade_core import hookimpl\n\n@hookimpl\ndef realtrade_exchange():\n    return None\n"
    make_dist(site, "empty-dist", "1.0", {"empty": "empty_plugin"}, {"empty_plugin": source})
    with pytest.raises(PluginValidationError, match="must return exactly one ExchangeSpec"):
        host().load_exchange("empty")


def test_load_exchanges_env_restricts_what_may_load(site):
    make_dist(site, "acme-exchange", "1.0", {"acme": "acme_plugin"}, {"acme_plugin": valid_plugin("acme")})
    make_dist(site, "zeta-exchange", "1.0", {"zeta": "zeta_plugin"}, {"zeta_plugin": valid_plugin("zeta")})
    h = host(REALTRADE_LOAD_EXCHANGES="acme")
    rows = {r.name: r for r in h.list_exchanges()}
    assert rows["acme"].status == "installed" and rows["zeta"].status == "disabled"
    assert h.load_exchange("acme").name == "acme"
    with pytest.raises(ExchangeDisabledError, match="REALTRADE_LOAD_EXCHANGES"):
        h.load_exchange("zeta")


def test_disable_exchanges_env_blocks_one(site):
    make_dist(site, "acme-exchange", "1.0", {"acme": "acme_plugin"}, {"acme_plugin": valid_plugin("acme")})
    h = host(REALTRADE_DISABLE_EXCHANGES="acme, other")
    assert next(r for r in h.list_exchanges() if r.name == "acme").status == "disabled"
    with pytest.raises(ExchangeDisabledError, match="REALTRADE_DISABLE_EXCHANGES"):
        h.load_exchange("acme")


def test_trace_env_logs_hook_calls(site, caplog):
    make_dist(site, "acme-exchange", "1.0", {"acme": "acme_plugin"}, {"acme_plugin": valid_plugin("acme")})
    with caplog.at_level(logging.DEBUG, logger="realtrade_core.hooks"):
        host(REALTRADE_TRACE_HOOKS="1").load_exchange("acme")
    assert any("realtrade_exchange" in r.getMessage() for r in caplog.records)


def _request(amount: float) -> OrderRequest:
    return OrderRequest("acme", "BTC/USDT", "buy", "limit", amount, 100.0, "cid-1", "emulator", True)


def test_pre_trade_veto_from_a_risk_plugin_blocks_the_order():
    class MaxNotional:
        @hookimpl
        def realtrade_pre_trade(self, request):
            if request.amount * (request.price or 0) > 1_000:
                return Veto("order above the 1,000 USDT limit", source="max-notional")
            return None

    h = host()
    h.register(MaxNotional(), "max-notional")
    assert h.pre_trade(_request(1)) == []
    assert h.pre_trade(_request(50)) == [Veto("order above the 1,000 USDT limit", source="max-notional")]


def test_a_raising_observer_does_not_break_the_caller(caplog):
    class Broken:
        @hookimpl
        def realtrade_order_event(self, exchange, event):
            raise RuntimeError("alert service down")

    h = host()
    h.register(Broken(), "broken-alerts")
    with caplog.at_level(logging.ERROR):
        h.order_event("acme", object())
    assert "realtrade_order_event" in caplog.text


def test_extensions_load_from_their_own_group_and_a_broken_one_is_reported(site):
    ext = "from realtrade_core import hookimpl\n\n@hookimpl\ndef realtrade_store_event(event):\n    pass\n"
    make_dist(site, "alerts-dist", "1.0", {"alerts": "alerts_ext"}, {"alerts_ext": ext}, group="realtrade.plugins")
    make_dist(
        site, "bad-ext", "1.0", {"badext": "bad_ext"}, {"bad_ext": "raise ImportError('x')"}, group="realtrade.plugins"
    )
    rows = {r.name: r for r in host().load_extensions()}
    assert rows["alerts"].status == "loaded"
    assert rows["badext"].status == "error"


def test_every_hook_is_prefixed_documented_with_an_example_and_listed_in_the_readme():
    import inspect
    from pathlib import Path

    from realtrade_core import hookspecs

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    hooks = [f for name, f in vars(hookspecs).items() if inspect.isfunction(f) and name.startswith("realtrade_")]
    assert len(hooks) >= 4
    for hook in hooks:
        doc = inspect.getdoc(hook) or ""
        assert "Example::" in doc and "Called" in doc, hook.__name__
        assert f"`{hook.__name__}`" in readme, hook.__name__
