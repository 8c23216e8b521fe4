"""USDT perpetual markets: how a store of ``market_type="perpetual"`` is asked for, which ccxt
exchange and markets it uses, and the errors for a symbol of the other market type."""

from __future__ import annotations

import pytest

from realtrade_core import get_store
from realtrade_core.errors import ConfigurationError
from realtrade_core.host import load_exchange
from realtrade_core.store import check_market_type, clear_stores, market_type_mismatch


@pytest.fixture(autouse=True)
def _fresh_stores():
    yield
    clear_stores()


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_the_exchange_plugins_declare_perpetual_markets(exchange):
    assert "perpetual" in load_exchange(exchange).capabilities.market_types


@pytest.mark.parametrize("written", ["perpetual", "swap", "Perpetual", " SWAP "])
def test_swap_is_ccxts_word_for_a_perpetual_store(written):
    store = get_store("bybit", "mainnet", market_type=written)
    assert store.market_type == "perpetual"
    assert store.perpetual and store.ccxt_market_type == "swap"


def test_swap_and_perpetual_share_one_store():
    swap = get_store("binance", "mainnet", market_type="swap")
    assert swap is get_store("binance", "mainnet", market_type="perpetual")
    assert swap is not get_store("binance", "mainnet", market_type="spot")


def test_binance_perpetuals_use_ccxts_usdm_client_and_load_only_linear_markets():
    perp = get_store("binance", "mainnet", market_type="perpetual")
    spot = get_store("binance", "mainnet")
    assert perp.ccxt_exchange_id == "binanceusdm" and spot.ccxt_exchange_id == "binance"
    client = perp.client  # made without touching the network
    assert type(client).__name__ == "binanceusdm"
    assert client.options["fetchMarkets"]["types"] == ["linear"]
    assert spot.client.options["fetchMarkets"]["types"] == ["spot"]


def test_bybit_perpetuals_load_the_linear_category():
    perp = get_store("bybit", "mainnet", market_type="perpetual")
    assert perp.ccxt_exchange_id == "bybit"
    assert perp.client.options["fetchMarkets"]["types"] == ["linear"]
    assert perp.client.options["defaultType"] == "swap"


@pytest.mark.parametrize("asked", ["futures", "future"])
def test_dated_futures_are_refused_pointing_at_perpetual(asked):
    with pytest.raises(ConfigurationError) as info:
        get_store("binance", "mainnet", market_type=asked)
    message = str(info.value)
    assert "not supported yet" in message and "market_type='perpetual'" in message


def test_an_unknown_market_type_names_the_ones_there_are():
    with pytest.raises(ConfigurationError, match=r"'option' is not supported yet; use 'spot' or 'perpetual'"):
        get_store("bybit", "mainnet", market_type="option")


def test_an_exchange_without_perpetual_support_says_so():
    # The generic ccxt adapter declares spot only.
    with pytest.raises(ConfigurationError) as info:
        get_store("ccxt:kraken", "mainnet", market_type="perpetual")
    assert "ccxt:kraken does not support perpetual markets" in str(info.value)
    assert "spot" in str(info.value)


def test_spot_symbol_on_a_perpetual_store_says_how_to_write_the_contract():
    problem = market_type_mismatch("BTC/USDT", "perpetual", "binance")
    assert "'BTC/USDT' is a spot symbol" in problem and "BTC/USDT:USDT" in problem


def test_contract_symbol_on_a_spot_store_says_to_use_a_perpetual_store():
    problem = market_type_mismatch("ETH/USDT:USDT", "spot", "bybit")
    assert "perpetual contract" in problem and "market_type='perpetual'" in problem and "ETH/USDT" in problem


def test_matching_symbols_pass():
    assert market_type_mismatch("BTC/USDT:USDT", "perpetual") is None
    assert market_type_mismatch("BTC/USDT", "spot") is None
    assert market_type_mismatch("BTCUSDT", "perpetual") is None  # an exchange id: the market list decides


@pytest.mark.parametrize(
    ("market_type", "symbol", "expected"),
    [("perpetual", "BTC/USDT", "is a spot symbol"), ("spot", "BTC/USDT:USDT", "is a perpetual contract")],
)
def test_getdata_refuses_a_symbol_of_the_other_market_type_before_anything_starts(market_type, symbol, expected):
    store = get_store("binance", "emulator", market_type=market_type)
    with pytest.raises(ConfigurationError, match=expected):
        store.getdata(dataname=symbol, timeframe="1m")
    assert not store.started and store.emulator is None


def test_a_perpetual_store_market_lookup_refuses_the_spot_market_of_the_same_coin():
    # ccxt's records for one id: the spot market and the contract (as ccxt 4 lists both).
    store = get_store("bybit", "mainnet", market_type="perpetual")
    store.client.markets = {
        "BTC/USDT": {"id": "BTCUSDT", "symbol": "BTC/USDT", "type": "spot"},
        "BTC/USDT:USDT": {"id": "BTCUSDT", "symbol": "BTC/USDT:USDT", "type": "swap"},
    }
    assert store.market("BTC/USDT:USDT")["type"] == "swap"
    assert store.market("BTCUSDT")["type"] == "swap"
    with pytest.raises(ConfigurationError, match="is a spot symbol"):
        store.market("BTC/USDT")


def test_check_market_type_without_capabilities():
    assert check_market_type("swap") == "perpetual"
    assert check_market_type("spot") == "spot"
    with pytest.raises(ConfigurationError):
        check_market_type(None)


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_leverage_above_the_cap_is_refused_before_anything_is_sent(exchange):
    store = get_store(exchange, "emulator", market_type="perpetual")
    with pytest.raises(ConfigurationError) as info:
        store.getbroker(leverage=10)
    message = str(info.value)
    assert "leverage 10x is above the cap of 5x" in message and "max_leverage=10" in message
    assert store.getbroker(leverage=10, max_leverage=10).p.leverage == 10
    assert not store.started and store.emulator is None


def test_leverage_on_a_spot_store_is_refused():
    store = get_store("binance", "emulator")
    with pytest.raises(ConfigurationError, match="applies to perpetual contracts; this is a spot store"):
        store.getbroker(leverage=2)


@pytest.mark.parametrize("leverage", [0, -1, "3", None])
def test_a_leverage_that_is_not_a_positive_number_is_refused(leverage):
    store = get_store("bybit", "emulator", market_type="perpetual")
    with pytest.raises(ConfigurationError, match="leverage must be a number above 0"):
        store.getbroker(leverage=leverage)


def test_paper_perpetuals_always_apply_the_contracts_rules():
    store = get_store("binance", "emulator", market_type="perpetual")
    with pytest.raises(ConfigurationError, match="exchange_rules=False leaves a perpetual contract"):
        store.getbroker(exchange_rules=False)


@pytest.mark.parametrize("funding", ["weekly", 2.0, [(1, 2, 3)]])
def test_a_bad_paper_funding_setting_is_refused_when_the_broker_is_made(funding):
    store = get_store("bybit", "emulator", market_type="perpetual")
    with pytest.raises(ConfigurationError, match=r"funding: .*funding='exchange' \(the default\) or None"):
        store.getbroker(funding=funding)
    assert store.getbroker(funding=0.0001).p.funding == 0.0001
    assert store.getbroker(funding=None).p.funding is None
