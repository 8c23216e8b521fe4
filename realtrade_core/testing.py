"""The plugin conformance suite: tests any exchange plugin runs to prove it meets the contract.

An exchange plugin subclasses :class:`ExchangeConformance` in its own tests and names its
exchange; pytest collects the inherited tests. What the plugin declares absent in its
``Capabilities`` (no emulator dialect, no public stream, ...) is skipped with the reason::

    # plugins/realtrade_kraken/tests/test_conformance.py
    from realtrade_core.testing import ExchangeConformance

    class TestKrakenConformance(ExchangeConformance):
        exchange = "kraken"

Every test runs against the plugin's own emulator dialect on 127.0.0.1 with a manual clock: real
ccxt, real sockets, real threads, no network. Needs pytest (imported here, not by the core).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from itertools import pairwise
from typing import Any, ClassVar

import pytest

MINUTE = 60_000


def _wait(predicate: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


class ExchangeConformance:
    """Inherit, set ``exchange``, and pytest runs the contract tests for that exchange."""

    exchange: ClassVar[str] = ""
    symbol: ClassVar[str] = "BTC/USDT"

    # --- fixtures -------------------------------------------------------------------------------

    @pytest.fixture
    def spec(self) -> Any:
        from realtrade_core.plugins import PluginHost

        assert self.exchange, f"{type(self).__name__} must set `exchange`"
        return PluginHost().load_exchange(self.exchange)

    @pytest.fixture
    def emulator(self, spec: Any) -> Any:
        if spec.emulator is None or not spec.capabilities.emulator:
            pytest.skip(f"{self.exchange} declares no emulator dialect")
        from realtrade_core.emulator.server import Emulator

        with Emulator(spec.emulator, symbols=(self.symbol,), speed=None, history=200, seed=1) as emu:
            yield emu

    @pytest.fixture
    def store(self, spec: Any, emulator: Any) -> Any:
        store = spec.store(venue="emulator", emulator=emulator, spec=spec)
        yield store
        store.stop()

    # --- the contract ------------------------------------------------------------------------------

    def test_registration_is_valid_and_named_after_the_entry_point(self, spec: Any) -> None:
        from realtrade_core.broker import Broker
        from realtrade_core.feed import Data
        from realtrade_core.store import Store

        assert spec.name == self.exchange
        assert issubclass(spec.store, Store) and issubclass(spec.feed, Data) and issubclass(spec.broker, Broker)
        for cls in (spec.store, spec.feed, spec.broker, spec.websocket):
            if cls is not None:
                assert cls.missing_members() == [], cls

    def test_unmodified_ccxt_loads_markets_and_candles_from_the_emulator(self, emulator: Any) -> None:
        client = emulator.ccxt_client()
        markets = client.load_markets()
        assert self.symbol in markets
        rows = client.fetch_ohlcv(self.symbol, "1m", limit=50)
        assert len(rows) == 50 and all(b[0] - a[0] == MINUTE for a, b in pairwise(rows))

    def test_historical_feed_returns_contiguous_closed_candles(self, store: Any, emulator: Any) -> None:
        import backtrader as bt

        now = emulator.engine.now()
        fromdate = datetime.fromtimestamp((now - 40 * MINUTE) / 1000, tz=timezone.utc).replace(tzinfo=None)
        seen: list[float] = []

        class Collect(bt.Strategy):
            def next(self) -> None:
                seen.append(self.data.datetime[0])

        cerebro = bt.Cerebro()
        cerebro.adddata(store.getdata(dataname=self.symbol, timeframe="1m", historical=True, fromdate=fromdate))
        cerebro.addstrategy(Collect)
        cerebro.run()
        assert len(seen) == 40  # the forming candle is not a bar
        assert len(set(seen)) == 40

    def test_live_feed_delivers_each_closed_candle_once(self, spec: Any, store: Any, emulator: Any) -> None:
        if not spec.capabilities.public_stream or spec.websocket is None:
            pytest.skip(f"{self.exchange} declares no public stream")
        import backtrader as bt

        seen: list[float] = []
        live = threading.Event()

        class Collect(bt.Strategy):
            def notify_data(self, data: Any, status: int, *args: Any, **kwargs: Any) -> None:
                if data._getstatusname(status) == "LIVE":
                    live.set()

            def next(self) -> None:
                seen.append(self.data.datetime[0])

        cerebro = bt.Cerebro()
        cerebro.adddata(store.getdata(dataname=self.symbol, timeframe="1m", backfill_bars=3, qcheck=0.05))
        cerebro.addstrategy(Collect)
        errors: list[BaseException] = []

        def drive() -> None:
            try:
                assert _wait(live.is_set), "the feed never went LIVE"
                for n in range(4, 7):
                    emulator.step(1)
                    assert _wait(lambda n=n: len(seen) >= n), f"bar {n} never arrived"
            except BaseException as exc:
                errors.append(exc)
            finally:
                cerebro.runstop()

        driver = threading.Thread(target=drive, daemon=True)
        driver.start()
        while driver.is_alive():  # cerebro.run() forgets a stop asked before it started
            cerebro.run()
        assert not errors, errors
        assert len(seen) == 6 and len(set(seen)) == 6

    def test_paper_broker_fills_a_market_order(self, store: Any, emulator: Any) -> None:
        import backtrader as bt

        done: list[Any] = []

        class BuyOnce(bt.Strategy):
            def next(self) -> None:
                if len(self) == 2:
                    self.buy(size=0.001)

            def notify_order(self, order: Any) -> None:
                if order.status == order.Completed:
                    done.append((order.executed.size, order.executed.price, order.executed.comm))

        now = emulator.engine.now()
        fromdate = datetime.fromtimestamp((now - 10 * MINUTE) / 1000, tz=timezone.utc).replace(tzinfo=None)
        cerebro = bt.Cerebro()
        cerebro.adddata(store.getdata(dataname=self.symbol, timeframe="1m", historical=True, fromdate=fromdate))
        cerebro.setbroker(store.getbroker(cash=10_000.0))
        cerebro.addstrategy(BuyOnce)
        cerebro.run()
        assert len(done) == 1
        size, price, commission = done[0]
        assert size == pytest.approx(0.001) and price > 0 and commission > 0
