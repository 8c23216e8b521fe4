"""The conformance suite itself: numbered pytest cases any exchange plugin inherits (needs pytest).

Import it through :mod:`realtrade_core.testing` (``from realtrade_core.testing import
ExchangeConformance``). Each test's name starts with its case number (``test_rt101_...``), so
``-k rt5`` runs the order cases; a case whose needs the plugin does not declare is skipped with
the reason (see :mod:`.cases`).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar

try:
    import pytest
except ImportError:  # importable without pytest (its cases only run under it)
    pytest = None  # type: ignore[assignment]

from .cases import case, unmet
from .replay import ENV_RECORD, ENV_UPSTREAM, ReplayServer, load_recording
from .waiting import wait_until

__all__ = ["ExchangeConformance"]

MINUTE = 60_000


def _fixture(*args: Any, **kwargs: Any) -> Any:
    """``pytest.fixture`` where pytest is installed; without it the class still imports."""
    if pytest is not None:
        return pytest.fixture(*args, **kwargs)
    return args[0] if args else (lambda func: func)


def conformance(case_id: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a test method as the suite's case ``case_id``; the gate reads what it needs."""

    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        func.realtrade_case = case(case_id)  # type: ignore[attr-defined]
        return func

    return mark


def _naive_utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).replace(tzinfo=None)


def _last_closed_open(emulator: Any) -> int:
    return (emulator.engine.now() // MINUTE) * MINUTE - MINUTE


def _candles(emulator: Any, symbol: str, start: int, end: int) -> list[tuple]:
    rows = emulator.engine.candles(symbol.replace("/", ""), MINUTE, start, end, limit=100_000)
    return [(c.open_time, float(c.open), float(c.high), float(c.low), float(c.close), float(c.volume)) for c in rows]


def _bars_strategy() -> type:
    import backtrader as bt

    class Bars(bt.Strategy):
        """Records every bar (open time and prices), every data state and store message."""

        def __init__(self) -> None:
            self.rows: list[tuple] = []
            self.states: list[str] = []
            self.store_messages: list[str] = []
            self.live = threading.Event()

        def notify_data(self, data: Any, status: int, *args: Any, **kwargs: Any) -> None:
            self.states.append(data._getstatusname(status))
            if self.states[-1] == "LIVE":
                self.live.set()

        def notify_store(self, msg: Any, *args: Any, **kwargs: Any) -> None:
            self.store_messages.append(str(msg))

        def next(self) -> None:
            d = self.data
            close_ms = int(d.datetime.datetime(0).replace(tzinfo=timezone.utc).timestamp() * 1000)
            self.rows.append((close_ms - MINUTE, d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0]))

    return Bars


def _run_driven(cerebro: Any, script: Callable[[Any], None]) -> Any:
    """``cerebro.run()`` here while ``script(strategy)`` drives the emulator from a thread;
    cerebro is stopped when the script ends (or fails). Returns the strategy."""
    errors: list[BaseException] = []
    done = threading.Event()

    def drive() -> None:
        try:
            running = wait_until(lambda: getattr(cerebro, "runningstrats", None), 30, "the strategy")
            script(running[0])
        except BaseException as exc:
            errors.append(exc)
        finally:
            while not done.wait(0.05):  # a stop asked before run() started is forgotten: insist
                cerebro.runstop()

    driver = threading.Thread(target=drive, daemon=True, name="conformance-driver")
    driver.start()
    try:
        (strategy,) = cerebro.run()
    finally:
        done.set()
        driver.join(15)
    if errors:
        raise errors[0]
    return strategy


class ExchangeConformance:
    """Inherit, set ``exchange``, and pytest runs the numbered contract cases for that exchange.

    ``symbol`` is the market the cases trade. ``recorded`` is a file of recorded REST answers
    (:mod:`.replay`) for a plugin without an emulator dialect: the discovery, metadata, history
    and paper cases then run offline against it. ``journal`` directories come from ``tmp_path``.
    """

    exchange: ClassVar[str] = ""
    symbol: ClassVar[str] = "BTC/USDT"
    recorded: ClassVar[str | Path | None] = None

    # --- fixtures -------------------------------------------------------------------------------

    @_fixture
    def spec(self) -> Any:
        from realtrade_core.plugins import PluginHost

        assert self.exchange, f"{type(self).__name__} must set `exchange` (the plugin's entry-point name)"
        return PluginHost().load_exchange(self.exchange)

    @_fixture(autouse=True)
    def _realtrade_gate(self, request: pytest.FixtureRequest) -> None:
        """Skip a case the plugin's capabilities do not cover, saying why."""
        found = getattr(request.function, "realtrade_case", None)
        if found is None or not found.needs:
            return
        reason = unmet(found.needs, request.getfixturevalue("spec"), recorded=self.recorded is not None)
        if reason is not None:
            pytest.skip(f"{found.id} {found.title}: {reason}")

    @property
    def _base_quote(self) -> tuple[str, str]:
        base, quote = self.symbol.split("/")
        return base, quote.split(":")[0]

    def make_emulator(self, **options: Any) -> Any:
        """A new in-process emulator of this exchange with a manual clock (not started)."""
        from realtrade_core.emulator.server import Emulator

        base, quote = self._base_quote
        settings = {"symbols": (self.symbol,), "speed": None, "history": 200, "seed": 5,
                    "balances": {quote: 10_000, base: 0}, **options}  # fmt: skip
        return Emulator(self.exchange, **settings)

    @_fixture
    def emulator(self, spec: Any) -> Iterator[Any]:
        """The exchange's emulator on 127.0.0.1, manual clock, 10,000 quote on the account."""
        if unmet(("emulator",), spec) is not None:
            pytest.skip(unmet(("emulator",), spec))
        with self.make_emulator() as emu:
            yield emu

    def make_store(self, spec: Any, emulator: Any) -> Any:
        """A store of its own (not the process cache) on ``emulator``; ccxt gives up after 2 s."""
        return spec.store(venue="emulator", emulator=emulator, spec=spec, ccxt_config={"timeout": 2000})

    @_fixture
    def store(self, spec: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
        """A started store: on the emulator, or on recorded answers for a plugin without one."""
        if unmet(("emulator",), spec) is None:
            store = self.make_store(spec, request.getfixturevalue("emulator"))
            store.start()
            yield store
            store.stop()
            return
        if self.recorded is None:
            pytest.skip(unmet(("offline",), spec))
        yield from self._recorded_store(spec)

    def _recorded_store(self, spec: Any) -> Iterator[Any]:
        path = Path(self.recorded)  # type: ignore[arg-type]
        recording = os.environ.get(ENV_RECORD, "").strip() not in ("", "0")
        if recording:
            upstream = os.environ.get(ENV_UPSTREAM)
            server = ReplayServer(
                load_recording(path) if path.exists() else None,
                upstream=(lambda origin: upstream) if upstream else (lambda origin: origin),
                exchange=self.exchange,
                symbol=self.symbol,
            )
        else:
            server = ReplayServer(load_recording(path))
        with server:
            store = spec.store(venue="mainnet", spec=spec, ccxt_config={"timeout": 5000})
            server.route(store.client)
            try:
                store.start()
                yield store
            finally:
                store.stop()
                if recording:
                    server.save(path)
        assert not server.misses, f"requests with no recorded answer in {path}: {server.misses}"

    @_fixture
    def data(self, store: Any) -> Callable[..., Any]:
        """Make a 1m data feed of ``symbol`` on the store: ``data(historical=True, ...)``."""
        return lambda **options: store.getdata(dataname=self.symbol, timeframe="1m", **options)

    @_fixture
    def broker(self, store: Any) -> Callable[..., Any]:
        """Make a broker on the store: ``broker()`` paper, ``broker(mode="live", journal=...)``."""
        return lambda **options: store.getbroker(**options)

    def live(self, emulator: Any, store: Any, tmp_path: Path, **options: Any) -> Any:
        """A live cerebro run (:class:`~.live.LiveRun`) with a journal in ``tmp_path``."""
        from .live import LiveRun

        options = {"journal": str(tmp_path / "journal.sqlite3"), "unknown_outcome_window": 0.3,
                   "fill_grace": 1.0, **options}  # fmt: skip
        return LiveRun(emulator, store, self.symbol, **options)

    def tick(self, store: Any) -> Decimal:
        from realtrade_core.rules import MarketRules

        return MarketRules.from_store(store, self.symbol).price_tick or Decimal("0.01")

    def last_price(self, emulator: Any) -> Decimal:
        return emulator.engine.last_price(self.symbol.replace("/", ""))

    # --- RT-1xx discovery --------------------------------------------------------------------------

    @conformance("RT-101")
    def test_rt101_loads_by_name_and_its_registration_is_valid(self, spec: Any) -> None:
        from realtrade_core.broker import Broker
        from realtrade_core.execution import dialect_problems
        from realtrade_core.feed import Data
        from realtrade_core.store import Store

        assert spec.name == self.exchange
        assert issubclass(spec.store, Store) and issubclass(spec.feed, Data) and issubclass(spec.broker, Broker)
        assert spec.store.exchange == spec.feed.exchange == self.exchange
        for cls in (spec.store, spec.feed, spec.broker, spec.websocket):
            if cls is not None:
                assert cls.missing_members() == [], cls
        assert dialect_problems(spec.execution) == []
        if spec.websocket is not None:
            from realtrade_core.websocket.contract import store_contract_problems

            assert store_contract_problems(spec.websocket, public_stream=spec.capabilities.public_stream) == []

    @conformance("RT-102")
    def test_rt102_is_listed_from_metadata_without_importing_it(self, spec: Any) -> None:
        from importlib.metadata import version

        from realtrade_core.plugins import PluginHost

        (row,) = [r for r in PluginHost().list_exchanges() if r.name == self.exchange]
        assert row.version == version(row.distribution)
        top = row.module.split(".")[0]
        code = (
            "import json, sys\nfrom realtrade_core.plugins import list_exchanges\n"
            f"rows = [r.as_dict() for r in list_exchanges() if r.name == {self.exchange!r}]\n"
            f"imported = sorted(m for m in sys.modules if m.split('.')[0] in ({top!r}, 'ccxt', 'backtrader'))\n"
            "print(json.dumps({'rows': rows, 'imported': imported}))\n"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout)
        assert [(r["distribution"], r["version"], r["status"]) for r in seen["rows"]] == [
            (row.distribution, row.version, "installed")
        ]
        assert seen["imported"] == [], f"listing imported {seen['imported']}"

    @conformance("RT-103")
    def test_rt103_capabilities_agree_with_the_registration(self, spec: Any) -> None:
        from realtrade_core.spec import Capabilities
        from realtrade_core.timeframes import parse_timeframe

        caps = spec.capabilities
        assert isinstance(caps, Capabilities)
        if caps.public_stream or caps.private_stream:
            assert spec.websocket is not None, "a stream is declared but no WebSocket class is registered"
        if caps.emulator:
            assert spec.emulator is not None, "capabilities.emulator is declared but no emulator dialect"
        assert caps.order_types <= {"market", "limit", "stop", "stop_limit"}, caps.order_types
        assert caps.market_types and caps.timeframes
        for name in caps.timeframes:
            parse_timeframe(name)

    # --- RT-2xx market metadata -----------------------------------------------------------------

    @conformance("RT-201")
    def test_rt201_ccxt_loads_the_markets_with_precision_and_limits(self, store: Any) -> None:
        market = store.client.markets[self.symbol]
        assert market["spot"] and market["active"] is not False
        assert market["precision"]["amount"] and market["precision"]["price"]
        limits = market["limits"]
        assert limits["amount"]["min"] or limits["cost"]["min"], "no minimum amount or cost"
        rows = store.client.fetch_ohlcv(self.symbol, "1m", limit=20)
        assert len(rows) == 20 and all(b[0] - a[0] == MINUTE for a, b in pairwise(rows))

    @conformance("RT-202")
    def test_rt202_the_store_gives_the_markets_trading_rules(self, store: Any) -> None:
        from realtrade_core.rules import MarketRules

        rules = MarketRules.from_store(store, self.symbol)
        assert (rules.symbol, rules.base, rules.quote) == (self.symbol, *self._base_quote)
        assert rules.amount_step and rules.amount_step > 0 and rules.price_tick and rules.price_tick > 0
        assert rules.min_amount or rules.min_notional
        tiny = rules.amount_step / 10
        assert rules.check("buy", tiny, Decimal(100)) is not None  # off the lot step: refused, with why

    @conformance("RT-203")
    def test_rt203_an_unknown_symbol_is_a_clear_error(self, store: Any) -> None:
        from realtrade_core import ConfigurationError

        with pytest.raises(ConfigurationError, match=r"has no market 'NOPE/USDT'"):
            store.getdata(dataname="NOPE/USDT", timeframe="1m")

    @conformance("RT-204")
    def test_rt204_an_unsupported_timeframe_is_a_clear_error(self, store: Any) -> None:
        from realtrade_core import ConfigurationError

        with pytest.raises(ConfigurationError, match="unknown timeframe '1x'"):
            store.getdata(dataname=self.symbol, timeframe="1x")
        with pytest.raises(ConfigurationError, match=r"no 7m candles; supported timeframes: .*1m"):
            store.getdata(dataname=self.symbol, timeframe="7m")

    # --- RT-3xx history ----------------------------------------------------------------------------

    @conformance("RT-301")
    def test_rt301_a_historical_feed_gives_contiguous_closed_candles(self, store: Any, data: Any) -> None:
        import backtrader as bt

        now = store.server_time()
        start = (now // MINUTE) * MINUTE - 40 * MINUTE
        cerebro = bt.Cerebro()
        cerebro.adddata(data(historical=True, fromdate=_naive_utc(start)))
        cerebro.addstrategy(_bars_strategy())
        (strategy,) = cerebro.run()
        opens = [r[0] for r in strategy.rows]
        assert opens == [start + i * MINUTE for i in range(40)]  # the forming candle is not a bar
        assert all(r[2] >= max(r[1], r[4]) and r[3] <= min(r[1], r[4]) for r in strategy.rows)

    @conformance("RT-302")
    def test_rt302_history_longer_than_a_page_is_paged_without_gaps(self, spec: Any, tmp_path: Path) -> None:
        import backtrader as bt

        from realtrade_core.emulator.replay import synthetic_candles

        count = spec.store.max_page * 2 + 500
        start = 1_700_000_000_000 // MINUTE * MINUTE
        rows = synthetic_candles(
            seed=3, count=count + 100, interval_ms=MINUTE, start_ms=start, start_price=Decimal(30000)
        )
        path = tmp_path / "candles.csv"
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["timestamp", "open", "high", "low", "close", "volume"])
            writer.writerows([c.open_time, c.open, c.high, c.low, c.close, c.volume] for c in rows)
        with self.make_emulator(data=str(path), history=count) as emu:
            store = self.make_store(spec, emu)
            try:
                cerebro = bt.Cerebro()
                cerebro.adddata(store.getdata(dataname=self.symbol, timeframe="1m", historical=True,
                                              fromdate=_naive_utc(rows[0].open_time),
                                              todate=_naive_utc(rows[count].open_time)))  # fmt: skip
                cerebro.addstrategy(_bars_strategy())
                (strategy,) = cerebro.run()
            finally:
                store.stop()
        expected = [(c.open_time, float(c.open), float(c.high), float(c.low), float(c.close), float(c.volume))
                    for c in rows[:count]]  # fmt: skip
        assert len(strategy.rows) == count
        assert strategy.rows == expected

    @conformance("RT-303")
    def test_rt303_history_is_spliced_into_live_bars(self, emulator: Any, data: Any) -> None:
        import backtrader as bt

        start = _last_closed_open(emulator) - 19 * MINUTE  # 20 candles of history
        cerebro = bt.Cerebro()
        cerebro.adddata(data(fromdate=_naive_utc(start), qcheck=0.05))
        cerebro.addstrategy(_bars_strategy())

        def script(strategy: Any) -> None:
            wait_until(strategy.live.is_set, 30, "LIVE")
            for _ in range(5):
                emulator.step(1)
                target = _last_closed_open(emulator)
                wait_until(lambda t=target: strategy.rows and strategy.rows[-1][0] >= t, 20, f"bar {target}")

        strategy = _run_driven(cerebro, script)
        assert strategy.rows == _candles(emulator, self.symbol, start, _last_closed_open(emulator))
        assert len(strategy.rows) == 25

    # --- RT-4xx live bars --------------------------------------------------------------------------

    @conformance("RT-401")
    def test_rt401_a_live_feed_delivers_each_closed_candle_once(self, emulator: Any, data: Any) -> None:
        import backtrader as bt

        cerebro = bt.Cerebro()
        cerebro.adddata(data(backfill_bars=3, qcheck=0.05))
        cerebro.addstrategy(_bars_strategy())

        def script(strategy: Any) -> None:
            wait_until(strategy.live.is_set, 30, "LIVE")
            for n in range(4, 7):
                emulator.step(1)
                wait_until(lambda n=n: len(strategy.rows) >= n, 20, f"bar {n}")

        strategy = _run_driven(cerebro, script)
        end = _last_closed_open(emulator)
        assert strategy.rows == _candles(emulator, self.symbol, end - 5 * MINUTE, end)
        assert strategy.states[:3] == ["CONNECTED", "DELAYED", "LIVE"]

    @conformance("RT-402")
    def test_rt402_missed_candles_are_backfilled_after_disconnects(
        self, spec: Any, emulator: Any, data: Any, monkeypatch: Any
    ) -> None:
        import backtrader as bt

        # Five drops within 30 s count as consecutive failures, so the reconnect backoff would
        # double up to seconds; what is tested is the splice after each reconnect, not backoff.
        config = spec.websocket.default_config
        monkeypatch.setattr(spec.websocket, "default_config", replace(config, reconnect_delay=0.05))
        start = _last_closed_open(emulator) - 19 * MINUTE  # 20 candles of history
        cerebro = bt.Cerebro()
        cerebro.adddata(data(fromdate=_naive_utc(start), qcheck=0.05))
        cerebro.addstrategy(_bars_strategy())

        def script(strategy: Any) -> None:
            wait_until(strategy.live.is_set, 30, "LIVE")
            for i in range(30):
                if i % 6 == 5:  # five forced disconnects, two candles closing while disconnected
                    emulator.drop_connections()
                    emulator.step(2)
                else:
                    emulator.step(1)
                target = _last_closed_open(emulator)
                wait_until(lambda t=target: strategy.rows and strategy.rows[-1][0] >= t, 30, f"bar {target}")

        strategy = _run_driven(cerebro, script)
        assert strategy.rows == _candles(emulator, self.symbol, start, _last_closed_open(emulator))
        assert len(strategy.rows) == 20 + 35
        assert strategy.states[:3] == ["CONNECTED", "DELAYED", "LIVE"]
        assert "DISCONNECTED" in strategy.states and strategy.states[-1] == "LIVE"
        # the store's connection changes reached the strategy too
        assert any(m.startswith("disconnected") for m in strategy.store_messages)
        assert sum(m.startswith("connected") for m in strategy.store_messages) >= 2

    # --- RT-5xx orders ---------------------------------------------------------------------------------

    @conformance("RT-501")
    def test_rt501_the_paper_broker_fills_a_market_order(self, store: Any, data: Any, broker: Any) -> None:
        import backtrader as bt

        done: list[tuple] = []

        class BuyOnce(bt.Strategy):
            def next(self) -> None:
                if len(self) == 2:
                    self.buy(size=0.001)

            def notify_order(self, order: Any) -> None:
                if order.status == order.Completed:
                    done.append((len(self), order.executed.size, order.executed.price, order.executed.comm))

        now = store.server_time()
        cerebro = bt.Cerebro()
        cerebro.adddata(data(historical=True, fromdate=_naive_utc((now // MINUTE) * MINUTE - 10 * MINUTE)))
        cerebro.setbroker(broker(cash=10_000.0))
        cerebro.addstrategy(BuyOnce)
        cerebro.run()
        assert len(done) == 1
        bar, size, price, commission = done[0]
        assert bar == 3  # the bar after the one that created it, as a backtest fills
        assert size == pytest.approx(0.001) and price > 0 and commission > 0

    @conformance("RT-502")
    def test_rt502_a_live_market_order_completes_as_the_exchange_filled_it(
        self, emulator: Any, store: Any, tmp_path: Path
    ) -> None:
        with self.live(emulator, store, tmp_path) as run:
            s = run.strategy
            order = run.do(lambda s: s.buy(size=0.01))
            run.until(lambda: "Completed" in s.statuses(order), "the market order completing")
            assert s.statuses(order) == ["Submitted", "Accepted", "Completed"]
            fills = emulator.fills(client_order_id=order.info.client_order_id)
            assert fills and sum(f.amount for f in fills) == Decimal("0.01")
            note = [n for n in s.notes if n.ref == order.ref][-1]
            average = sum(f.amount * f.price for f in fills) / sum(f.amount for f in fills)
            assert note.size == pytest.approx(0.01) and note.price == pytest.approx(float(average))
            assert note.comm > 0

    @conformance("RT-503")
    def test_rt503_partial_fills_report_partial_then_completed(self, spec: Any, tmp_path: Path) -> None:
        import backtrader as bt

        from realtrade_core.emulator.model import MarketSpec

        base, quote = self._base_quote
        market = MarketSpec(self.symbol.replace("/", ""), base, quote, step_size=Decimal("0.000001"),
                            min_amount=Decimal("0.000001"), max_fill_per_step=Decimal("0.004"))  # fmt: skip
        with self.make_emulator(markets=[market]) as emulator:
            store = self.make_store(spec, emulator)
            try:
                with self.live(emulator, store, tmp_path) as run:
                    s = run.strategy
                    price = float(self.last_price(emulator) - 2 * self.tick(store))
                    order = run.do(lambda s: s.buy(size=0.01, exectype=bt.Order.Limit, price=price))
                    run.until(lambda: "Completed" in s.statuses(order), "the last partial fill")
                    fills = emulator.fills(client_order_id=order.info.client_order_id)
                    assert [f.amount for f in fills] == [Decimal("0.004"), Decimal("0.004"), Decimal("0.002")]
                    notes = [n for n in s.notes if n.ref == order.ref]
                    assert [n.status for n in notes] == ["Submitted", "Accepted", "Partial", "Partial", "Completed"]
                    assert [n.size for n in notes[2:]] == pytest.approx([0.004, 0.008, 0.01])
            finally:
                store.stop()

    @conformance("RT-504")
    def test_rt504_a_resting_limit_order_is_cancelled(self, emulator: Any, store: Any, tmp_path: Path) -> None:
        import backtrader as bt

        with self.live(emulator, store, tmp_path) as run:
            s = run.strategy
            far = (self.last_price(emulator) * Decimal("0.5")).quantize(self.tick(store))
            order = run.do(lambda s: s.buy(size=0.01, exectype=bt.Order.Limit, price=float(far)))
            assert [o.client_order_id for o in emulator.orders(status="open")] == [order.info.client_order_id]
            run.do(lambda s: s.cancel(order))
            run.until(lambda: "Canceled" in s.statuses(order), "the cancel")
            assert emulator.order(client_order_id=order.info.client_order_id).status.value == "canceled"
            assert s.statuses(order) == ["Submitted", "Accepted", "Canceled"]
            run.wait(lambda: run.broker.getcash() == 10_000, "the locked quote coming back")
            assert not run.broker.get_orders_open()

    @conformance("RT-505")
    def test_rt505_a_stop_order_triggers_and_fills(self, emulator: Any, store: Any, tmp_path: Path) -> None:
        import backtrader as bt

        with self.live(emulator, store, tmp_path) as run:
            s = run.strategy
            trigger = float(self.last_price(emulator) + 3 * self.tick(store))
            order = run.do(lambda s: s.buy(size=0.01, exectype=bt.Order.Stop, price=trigger))
            run.until(lambda: "Completed" in s.statuses(order), "the stop filling")
            fills = emulator.fills(client_order_id=order.info.client_order_id)
            assert fills and sum(f.amount for f in fills) == Decimal("0.01")
            assert all(f.price >= Decimal(str(trigger)) for f in fills)  # it fired on the rise to the trigger
            assert s.statuses(order) == ["Submitted", "Accepted", "Completed"]

    @conformance("RT-506")
    def test_rt506_a_brackets_exit_reached_cancels_the_other(self, emulator: Any, store: Any, tmp_path: Path) -> None:
        import backtrader as bt

        tick = self.tick(store)
        with self.live(emulator, store, tmp_path) as run:  # the exchange's own bracket_exits
            s = run.strategy

            # Exits 1.5 of the widest recent candle away, so no one candle reaches both.
            end = _last_closed_open(emulator)
            width = max(r[2] - r[3] for r in _candles(emulator, self.symbol, end - 19 * MINUTE, end))
            away = max(Decimal(str(width * 1.5)).quantize(tick), 3 * tick)

            def place(s: Any) -> tuple:
                px = self.last_price(emulator)
                return tuple(s.buy_bracket(size=0.01, exectype=bt.Order.Market, stopprice=float(px - away),
                                           limitprice=float(px + away)))  # fmt: skip

            parent, stop, limit = run.do(place)
            run.until(lambda: "Completed" in s.statuses(parent), "the parent filling")
            # The exits go once the parent has filled: the market moves on only when both are on
            # the exchange (else a price moving meanwhile may fill the one before the other is sent).
            run.wait(lambda: run.placed(stop, limit), "both exits placed")
            # Both exits are near: whichever the market reaches first fills, the other ends.
            run.until(lambda: "Completed" in s.statuses(stop) + s.statuses(limit), "an exit filling", steps=200)
            winner, loser = (limit, stop) if "Completed" in s.statuses(limit) else (stop, limit)
            run.until(lambda: "Canceled" in s.statuses(loser), "the other exit ended")
            assert s.statuses(winner)[-1] == "Completed" and "Completed" not in s.statuses(loser)
            assert not emulator.orders(status="open")
            assert emulator.balances()[self._base_quote[0]].total == 0
            assert run.broker.getposition(s.data).size == 0 and not run.broker.get_orders_open()

    # --- RT-6xx private stream ----------------------------------------------------------------------

    def _account_events(self, store: Any) -> Any:
        from .waiting import EventRecorder

        recorder = EventRecorder()
        store.subscribe_account(recorder)
        return recorder

    def _market_buy(self, store: Any, cid: str) -> None:
        # ``cid``: letters and digits only, which every exchange takes (OKX's clOrdId has no "-").
        store.client.create_order(self.symbol, "market", "buy", 0.01, None, {"clientOrderId": cid})

    @conformance("RT-601")
    def test_rt601_the_private_stream_reports_orders_fills_and_balances(self, emulator: Any, store: Any) -> None:
        from realtrade_core.events import BalanceUpdate, Fill, OrderStatus, OrderUpdate

        events = self._account_events(store)
        events.wait(lambda r: any(e == "connected" or (isinstance(e, tuple) and e[0] == "connected")
                                  for e in r.items), 20, "the private stream connecting")  # fmt: skip
        self._probe(emulator, events)
        self._market_buy(store, "rt601buy")
        events.wait(lambda r: any(f.client_order_id == "rt601buy" for f in r.of(Fill)), 20, "the fill")
        events.wait(lambda r: any(u.client_order_id == "rt601buy" and u.status == OrderStatus.FILLED
                                  for u in r.of(OrderUpdate)), 20, "the order filled")  # fmt: skip
        fills = [f for f in events.of(Fill) if f.client_order_id == "rt601buy"]
        truth = emulator.fills(client_order_id="rt601buy")
        assert sorted(str(f.trade_id) for f in fills) == sorted(str(f.trade_id) for f in truth)
        assert sum(f.amount for f in fills) == Decimal("0.01") and all(f.symbol == self.symbol for f in fills)
        base = self._base_quote[0]
        events.wait(lambda r: any(b.asset == base and b.free + b.locked == emulator.balances()[base].total
                                  for u in r.of(BalanceUpdate) for b in u.balances), 20, "the new balance")  # fmt: skip

    def _probe(self, emulator: Any, events: Any) -> None:
        """Wait until the private stream is subscribed: a balance set now arrives on it."""
        from realtrade_core.events import BalanceUpdate

        quote = self._base_quote[1]
        for attempt in range(1, 50):
            amount = Decimal(10_000) + Decimal(attempt) / 100
            emulator.set_balance(quote, amount)
            try:
                events.wait(lambda r, a=amount: any(b.asset == quote and b.free == a
                                                    for u in r.of(BalanceUpdate) for b in u.balances),
                            1.0, "a balance update")  # fmt: skip
                return
            except AssertionError:
                continue
        raise AssertionError("the private stream never reported a balance change")

    @conformance("RT-602")
    def test_rt602_the_private_stream_reconnects_and_later_fills_arrive(self, emulator: Any, store: Any) -> None:
        from realtrade_core.events import Fill

        events = self._account_events(store)
        self._probe(emulator, events)
        assert emulator.drop_connections(private=True) >= 1
        events.wait(lambda r: "disconnected" in [e[0] for e in r.items if isinstance(e, tuple)], 20, "the drop")
        self._probe(emulator, events)  # resubscribed (and authenticated again)
        self._market_buy(store, "rt602buy")
        events.wait(lambda r: any(f.client_order_id == "rt602buy" for f in r.of(Fill)), 20, "the fill")

    # --- RT-7xx restart -------------------------------------------------------------------------------

    @conformance("RT-701")
    def test_rt701_a_restart_reattaches_the_open_order_and_applies_an_offline_fill_once(
        self, spec: Any, emulator: Any, tmp_path: Path
    ) -> None:
        import backtrader as bt

        store = self.make_store(spec, emulator)
        tick = self.tick(store)
        try:
            with self.live(emulator, store, tmp_path) as run:
                s = run.strategy
                buy = run.do(lambda s: s.buy(size=0.02))
                run.until(lambda: "Completed" in s.statuses(buy), "the buy")

                def place(s: Any) -> tuple:
                    px = self.last_price(emulator)
                    near = s.sell(size=0.01, exectype=bt.Order.Limit, price=float(px + 2 * tick))
                    far = s.sell(size=0.005, exectype=bt.Order.Limit, price=float((px * 2).quantize(tick)))
                    return near, far

                near, far = run.do(place)  # placed, then the process stops before the market moves
            near_cid, far_cid = near.info.client_order_id, far.info.client_order_id
        finally:
            store.stop()
        for _ in range(60):  # while it is down, the near order fills
            if emulator.fills(client_order_id=near_cid):
                break
            emulator.step(1)
        offline = emulator.fills(client_order_id=near_cid)
        assert offline and sum(f.amount for f in offline) == Decimal("0.01")
        store = self.make_store(spec, emulator)
        try:
            with self.live(emulator, store, tmp_path) as run:
                s = run.strategy
                assert s.first_position == pytest.approx(0.01, abs=1e-12)  # 0.02 bought, 0.01 sold offline
                (reattached,) = s.first_open
                assert reattached.info.client_order_id == far_cid and reattached.info.reattached
                run.step(2)
                assert run.broker.getposition(s.data).size == pytest.approx(0.01, abs=1e-12)  # applied once
                run.do(lambda s: s.cancel(reattached))
                run.until(lambda: any(n.client_order_id == far_cid and n.status == "Canceled" for n in s.notes),
                          "the reattached order's cancel")  # fmt: skip
        finally:
            store.stop()

    # --- RT-8xx bad messages ----------------------------------------------------------------------------

    @conformance("RT-801")
    def test_rt801_a_malformed_public_frame_is_quarantined(self, emulator: Any, store: Any, data: Any) -> None:
        import backtrader as bt

        cerebro = bt.Cerebro()
        feed = data(backfill_bars=2, qcheck=0.05)
        cerebro.adddata(feed)
        cerebro.addstrategy(_bars_strategy())

        def script(strategy: Any) -> None:
            wait_until(strategy.live.is_set, 30, "LIVE")
            assert emulator.send_malformed(private=False) >= 1
            wait_until(lambda: store.quarantined.get("malformed"), 20, "the frame quarantined")
            for n in range(3, 6):
                emulator.step(1)
                wait_until(lambda n=n: len(strategy.rows) >= n, 20, f"bar {n} after the bad frame")

        strategy = _run_driven(cerebro, script)
        end = _last_closed_open(emulator)
        assert strategy.rows == _candles(emulator, self.symbol, end - 4 * MINUTE, end)
        assert store.quarantined == {"malformed": 1}

    @conformance("RT-802")
    def test_rt802_arbitrary_input_never_escapes_the_stream_parsers(self, spec: Any, request: Any) -> None:
        if unmet(("emulator",), spec) is not None:
            pytest.skip(f"RT-802 opens the connections on the emulator: {unmet(('emulator',), spec)}")
        store = request.getfixturevalue("store")
        connections = [spec.websocket.for_store(store, private=False)]
        if spec.capabilities.private_stream:
            connections.append(spec.websocket.for_store(store, private=True))
        for ws in connections:
            delivered: list[Any] = []
            ws.on("data", delivered.append)
            for payload in _BAD_PAYLOADS:
                data = payload.encode() if isinstance(payload, str) else payload
                ws._deliver(data, isinstance(payload, str))  # as the connection's thread does
                ws._end = None  # a directive asked to reconnect: nothing to reconnect here
            bad = [e for e in delivered if getattr(e, "problem", None) and e.problem(None) is not None]
            assert bad == [], f"{ws.name} delivered invalid events: {bad}"


_BAD_PAYLOADS: tuple[str | bytes, ...] = (
    "", "not json", b"\xff\xfe\x00", "{", "[]", "{}", "null", "42", '"text"', "[1, 2, 3]",
    '{"data": null}', '{"data": [null, 1, "x"]}', '{"topic": null, "data": {}}', '{"e": null, "k": {}}',
    '{"stream": "x", "data": {"e": "kline", "k": {"t": "soon", "c": "NaN", "x": "yes"}}}',
    '{"topic": "kline.1.BTCUSDT", "data": [{"start": -1, "close": "inf", "confirm": "no"}]}',
    '{"id": 1, "result": null}', '{"op": "auth", "success": false}', "9" * 400,
    json.dumps({"e": "executionReport", "s": "BTCUSDT", "X": "FILLED", "l": "NaN"}),
    json.dumps({"topic": "execution", "data": [{"execQty": "-1", "symbol": None}]}),
)  # fmt: skip
