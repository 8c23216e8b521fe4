"""Store behaviour a user relies on: secrets stay out of logs, the exchange clock is tracked."""

from __future__ import annotations

import logging

from realtrade_core.emulator.server import Emulator
from realtrade_core.store import get_store


def test_keys_appear_in_no_log_line_repr_or_error(caplog):
    with Emulator("binance", symbols=("BTC/USDT",), speed=None, history=50) as emulator:
        store = get_store("binance", "emulator", emulator=emulator)
        with caplog.at_level(logging.DEBUG):
            store.start()
            store.client.fetch_balance()
            try:
                store.client.fetch_order("12345", "BTC/USDT")
            except Exception as exc:  # the exchange answers "order does not exist"
                error = str(exc)
        text = caplog.text + repr(store) + str(store.credentials) + error
        store.stop()
    assert emulator.secret not in text
    assert emulator.api_key not in text
    assert "X-MBX-APIKEY" in caplog.text  # ccxt did log its request headers, redacted


def test_a_skewed_exchange_clock_is_measured_and_signed_requests_keep_working():
    with Emulator("bybit", symbols=("BTC/USDT",), speed=None, history=50) as emulator:
        store = get_store("bybit", "emulator", emulator=emulator)
        store.start()
        emulator.set_clock_skew(30_000)  # the exchange's clock jumps 30 s ahead of ours
        balance = store._call(store.client.fetch_balance)
        assert balance["USDT"]["free"] > 0
        assert 29_000 <= store.time_offset_ms <= 31_000
        store.stop()


def test_the_clock_offset_is_re_measured_after_the_sync_interval():
    with Emulator("binance", symbols=("BTC/USDT",), speed=None, history=50) as emulator:
        store = get_store("binance", "emulator", emulator=emulator)
        store.start()
        assert abs(store.time_offset_ms) < 1_000
        emulator.set_clock_skew(-20_000)
        store.refresh_time()  # measured moments ago: nothing to do
        assert abs(store.time_offset_ms) < 1_000
        store.time_sync_interval = 0.0
        store.refresh_time()
        assert -21_000 <= store.time_offset_ms <= -19_000
        assert store.client.options["timeDifference"] == -store.time_offset_ms
        store.stop()


def test_stream_bars_hands_feeds_the_typed_events_the_socket_made():
    """A closed candle reaches a feed as the Bar the parser built, connection changes as
    ConnectionEvents: nothing is flattened into tuples on the way."""
    import threading

    from realtrade_core.events import Bar, ConnectionEvent, ConnectionState
    from realtrade_core.testing import wait_until

    with Emulator("bybit", symbols=("BTC/USDT",), speed=None, history=50) as emulator:
        store = get_store("bybit", "emulator", emulator=emulator)
        store.start()
        items: list[object] = []
        got_bar = threading.Event()

        def on_item(item: object) -> None:
            items.append(item)
            if isinstance(item, Bar):
                got_bar.set()

        unsubscribe = store.stream_bars("BTC/USDT", store.timeframe("1m"), on_item)
        try:
            wait_until(lambda: emulator.hub.subscribers("kline.1.BTCUSDT") == 1, what="the subscription")
            wait_until(lambda: any(isinstance(i, ConnectionEvent) for i in items), what="the connection event")
            emulator.step(1)
            assert got_bar.wait(10)
            bar = next(i for i in items if isinstance(i, Bar))
            assert bar.closed and bar.symbol == "BTC/USDT" and bar.timeframe == "1m"
            candle = store.client.fetch_ohlcv("BTC/USDT", "1m", since=bar.open_time, limit=1)[0]
            assert [bar.open_time, bar.open, bar.high, bar.low, bar.close, bar.volume] == candle
            assert [i.state for i in items if isinstance(i, ConnectionEvent)] == [ConnectionState.CONNECTED]
            assert all(isinstance(i, (Bar, ConnectionEvent)) for i in items)
        finally:
            unsubscribe()
            store.stop()
