"""The plugin conformance suite: tests any exchange plugin runs to prove it meets the contract.

An exchange plugin subclasses :class:`ExchangeConformance` in its own tests and names its
exchange; pytest collects the inherited tests. What the plugin declares absent in its
``Capabilities`` (no emulator dialect, no public stream, ...) is skipped with the reason::

    # plugins/realtrade_kraken/tests/test_conformance.py
    from realtrade_core.testing import ExchangeConformance

    class TestKrakenConformance(ExchangeConformance):
        exchange = "kraken"

Every test runs against the plugin's own emulator dialect on 127.0.0.1 with a manual clock: real
ccxt, real sockets, real threads, no network. The suite runs under pytest; importing this module
does not need it (the waiting helpers work anywhere).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from itertools import pairwise
from typing import Any, ClassVar

try:
    import pytest
except ImportError:  # the helpers below (wait_until, EventRecorder ...) work without pytest
    pytest = None  # type: ignore[assignment]

MINUTE = 60_000


def _fixture(func: Any) -> Any:
    """``pytest.fixture`` where pytest is installed; the suite itself only runs under pytest."""
    return pytest.fixture(func) if pytest is not None else func


def _wait(predicate: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something true (returned), at most ``timeout``
    seconds; then fail the test naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what or predicate}")
        time.sleep(0.005)


class EventRecorder:
    """Collects what a WebSocket connection emits (any thread), by event name, and waits for
    it with a bound. Called directly, it records ``"data"`` (use it as a store callback)."""

    def __init__(self, ws: Any = None, *names: str) -> None:
        self.entries: list[tuple[str, Any]] = []
        self._cond = threading.Condition()
        if ws is not None:
            for name in names or ("data", "connected", "disconnected", "error", "max_reconnect"):
                ws.on(name, functools.partial(self._add, name))

    def __call__(self, item: Any) -> None:
        self._add("data", item)

    def _add(self, name: str, item: Any) -> None:
        with self._cond:
            self.entries.append((name, item))
            self._cond.notify_all()

    @property
    def items(self) -> list[Any]:
        with self._cond:
            return [item for _, item in self.entries]

    def of(self, cls: type) -> list[Any]:
        return [e for e in self.items if isinstance(e, cls)]

    def of_kind(self, name: str) -> list[Any]:
        with self._cond:
            return [item for kind, item in self.entries if kind == name]

    def count(self, cls: type, **attrs: Any) -> int:
        return sum(all(getattr(e, k) == v for k, v in attrs.items()) for e in self.of(cls))

    def wait(self, predicate: Callable[[EventRecorder], Any], timeout: float = 5.0, what: str = "") -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}; last: {self.entries[-5:]}")


def emulated_store(exchange: str, symbol: str, **emulator_options: Any) -> Iterator[Any]:
    """A started store on a fresh in-process emulator with a manual clock (a fixture body:
    ``yield from emulated_store("bybit", "BTC/USDT")``); the store cache is cleared after."""
    from .store import clear_stores, get_store

    clear_stores()
    options = {"speed": None, "symbols": (symbol,), "history": 50, "future": 400, **emulator_options}
    store = get_store(exchange, "emulator", emulator_options=options)
    store.start()
    try:
        yield store
    finally:
        clear_stores()


def stop_connections(opened: Iterable[Any]) -> None:
    """Stop the connections a test started and check none left a thread behind."""
    opened = list(opened)
    for ws in opened:
        assert ws.stop(5.0), f"{ws.name} did not stop"
    names = {f"realtrade-ws-{ws.name}" for ws in opened} | {f"realtrade-ws-age-{ws.name}" for ws in opened}
    alive = [t.name for t in threading.enumerate() if t.name in names]
    assert not alive, f"threads left running: {alive}"


class ExchangeConformance:
    """Inherit, set ``exchange``, and pytest runs the contract tests for that exchange."""

    exchange: ClassVar[str] = ""
    symbol: ClassVar[str] = "BTC/USDT"

    # --- fixtures -------------------------------------------------------------------------------

    @_fixture
    def spec(self) -> Any:
        from realtrade_core.plugins import PluginHost

        assert self.exchange, f"{type(self).__name__} must set `exchange`"
        return PluginHost().load_exchange(self.exchange)

    @_fixture
    def emulator(self, spec: Any) -> Any:
        if spec.emulator is None or not spec.capabilities.emulator:
            pytest.skip(f"{self.exchange} declares no emulator dialect")
        from realtrade_core.emulator.server import Emulator

        with Emulator(spec.emulator, symbols=(self.symbol,), speed=None, history=200, seed=1) as emu:
            yield emu

    @_fixture
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
