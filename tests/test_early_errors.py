"""Bad input is refused where it is written: get_store, getdata and getbroker check the venue,
keys, market, timeframe, amounts and setting names before anything starts or touches the network,
with a message that says what was wrong and what to do."""

from __future__ import annotations

import threading

import pytest

from realtrade_core import ConfigurationError, ExchangeNotFoundError, get_store


def no_realtrade_threads() -> bool:
    return not [t.name for t in threading.enumerate() if t.name.startswith("realtrade")]


@pytest.fixture
def store():
    # An in-process emulator store that is never started: every check below happens before that.
    store = get_store("binance", "emulator", emulator_options={"symbols": ("BTC/USDT", "ETH/USDT"), "seed": 3})
    yield store
    assert store.started is False and store.emulator is None  # nothing was started by a refused call
    store.stop()


def test_a_misspelt_venue_gets_the_venue_meant():
    with pytest.raises(ConfigurationError, match=r"unknown venue 'mainet'\. Did you mean 'mainnet'\?"):
        get_store("binance", "mainet")


def test_a_key_without_its_secret_is_refused():
    with pytest.raises(ConfigurationError, match="api_key was given without secret"):
        get_store("binance", "testnet", api_key="k" * 20)


def test_a_misspelt_exchange_gets_the_name_meant_and_no_invented_distribution():
    with pytest.raises(ExchangeNotFoundError) as info:
        get_store("binanse")
    assert "Did you mean 'binance'" in str(info.value) and "realtrade-binanse" not in str(info.value)
    with pytest.raises(ExchangeNotFoundError) as info:
        get_store("ccxt:notanexchange", "mainnet")
    assert "ccxt has no exchange 'notanexchange'" in str(info.value) and "pip install" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dataname": "BTC/USDX", "timeframe": "1m"}, r"has no market 'BTC/USDX'\. Did you mean 'BTC/USDT'\?"),
        ({"dataname": "BTC-USDT", "timeframe": "1m"}, r"write spot symbols as BASE/QUOTE"),
        ({"dataname": "BTC/USDT", "timeframe": "7m"}, r"no 7m candles; supported timeframes: 1m, 3m"),
        ({"dataname": "BTC/USDT", "timeframe": "1x"}, r"unknown timeframe '1x'"),
        ({"dataname": "BTC/USDT", "timeframe": "1m", "backfill_bars": -3}, r"backfill_bars must be at least 0, got -3"),
        ({"dataname": "BTC/USDT", "timeframe": "1m", "backfil_bars": 5}, r"no setting 'backfil_bars'\. Did you mean "
         r"'backfill_bars'\?"),
        ({"dataname": "BTC/USDT", "timeframe": "1m", "qcheck": 0}, r"qcheck must be more than 0"),
        ({"timeframe": "1m"}, r"dataname is required"),
    ],
)  # fmt: skip
def test_getdata_refuses_bad_arguments_before_anything_starts(store, kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        store.getdata(**kwargs)
    assert no_realtrade_threads()


def test_getdata_takes_a_served_market_by_symbol_or_exchange_id(store):
    assert store.getdata(dataname="ETH/USDT", timeframe="5m").p.dataname == "ETH/USDT"
    assert store.getdata(dataname="BTCUSDT", timeframe="1m").p.dataname == "BTCUSDT"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cash": -1}, r"cash must be more than 0, got -1"),
        ({"cash": "lots"}, r"cash must be a number, got 'lots'"),
        ({"cash": None}, r"a paper broker needs its starting cash"),
        ({"commission": 1.5}, r"commission must be less than 1"),
        ({"mode": "life"}, r"unknown broker mode 'life'\. Did you mean 'live'\?"),
        ({"cassh": 5}, r"no setting 'cassh'\. Did you mean 'cash'\?"),
        ({"mode": "live", "stop_timeout": 0}, r"stop_timeout must be more than 0"),
    ],
)
def test_getbroker_refuses_bad_arguments_before_anything_starts(store, kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        store.getbroker(**kwargs)


def test_live_on_testnet_without_keys_is_refused_when_the_broker_is_made():
    store = get_store("bybit", "testnet")
    with pytest.raises(ConfigurationError, match=r"live trading needs an API key and secret of your testnet account"):
        store.getbroker(mode="live")
    assert store.started is False and store._client is None  # no request was made
    assert store.getbroker().paper  # paper trading on public data needs no key


def test_live_on_a_remote_emulator_without_keys_is_refused():
    store = get_store("binance", "emulator", emulator_url="http://127.0.0.1:9")
    with pytest.raises(ConfigurationError, match=r"the emulator's API key and secret \(`realtrade emulator` prints"):
        store.getbroker(mode="live")
