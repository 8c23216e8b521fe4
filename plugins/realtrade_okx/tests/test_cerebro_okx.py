"""OKX loaded by name in Cerebro scripts, as users do: history then live bars from the emulator,
paper trading, live market and limit orders with a cancel, and a live stop refused with why."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import backtrader as bt
import pytest

from realtrade_core.emulator.model import OrderStatus as EngineStatus
from realtrade_core.store import clear_stores, get_store
from realtrade_core.testing import wait_until
from realtrade_core.testing.live import LiveRun

SYMBOL = "BTC/USDT"
MINUTE = 60_000


@pytest.fixture
def store() -> Iterator[Any]:
    clear_stores()
    store = get_store(
        "okx", "emulator", emulator_options={"speed": None, "symbols": (SYMBOL,), "history": 60, "future": 300,
                                             "balances": {"USDT": 10_000, "BTC": 0}},
    )  # fmt: skip
    store.start()
    yield store
    store.stop()
    clear_stores()


class BuyOnLive(bt.Strategy):
    """Buys on its second live bar (paper), records bars and notifications."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, float]] = []
        self.live_bars = 0
        self.statuses: list[str] = []
        self.live = threading.Event()
        self.stop_order: Any = None

    def notify_data(self, data: Any, status: int, *args: Any, **kwargs: Any) -> None:
        if data._getstatusname(status) == "LIVE":
            self.live.set()

    def notify_order(self, order: Any) -> None:
        self.statuses.append(order.getstatusname())

    def next(self) -> None:
        close_ms = int(self.data.datetime.datetime(0).timestamp() * 1000)  # naive UTC
        self.rows.append((close_ms, self.data.close[0]))
        if self.live.is_set():
            self.live_bars += 1
            if self.live_bars == 2:
                self.buy(size=0.01)
            elif self.position and self.stop_order is None:
                # Paper trading simulates stops for any exchange, OKX's too (live ones are refused).
                self.stop_order = self.sell(size=0.01, exectype=bt.Order.Stop, price=self.data.close[0] / 2)


def test_history_then_live_bars_and_a_paper_buy_in_a_cerebro_script(store: Any) -> None:
    emu = store.emulator
    cerebro = bt.Cerebro()
    cerebro.adddata(store.getdata(dataname=SYMBOL, timeframe="1m", backfill_bars=10, qcheck=0.02))
    cerebro.setbroker(store.getbroker(cash=1_000.0))  # paper, the default
    cerebro.addstrategy(BuyOnLive)
    done = threading.Event()
    result: list[Any] = []

    def run() -> None:
        try:
            result.extend(cerebro.run())
        finally:
            done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    strategy = wait_until(lambda: getattr(cerebro, "runningstrats", None), 30, "the strategy")[0]
    wait_until(strategy.live.is_set, 30, "LIVE")
    for n in range(1, 5):
        emu.step(1)
        wait_until(lambda n=n: strategy.live_bars >= n, 20, f"live bar {n}")
    wait_until(lambda: "Completed" in strategy.statuses, 20, "the paper buy")
    emu.step(1)
    wait_until(lambda: strategy.statuses.count("Accepted") == 2, 20, "the paper stop")
    while not done.wait(0.05):
        cerebro.runstop()
    thread.join(10)
    assert len(strategy.rows) >= 14  # 10 history bars, then the live ones
    closes = [c for _, c in strategy.rows]
    truth = emu.engine.candles("BTCUSDT", MINUTE, limit=len(closes) + 1)[:-1]  # the last one is forming
    assert closes == [float(c.close) for c in truth[-len(closes) :]]
    assert strategy.statuses == ["Submitted", "Accepted", "Completed", "Submitted", "Accepted"]
    assert strategy.stop_order.status == bt.Order.Accepted  # resting, far below the market
    assert emu.fills() == []  # paper: nothing reached the exchange
    assert strategy.broker.getposition(strategy.data).size == pytest.approx(0.01)


def test_live_market_limit_cancel_and_a_refused_stop(store: Any, tmp_path: Path) -> None:
    emu = store.emulator
    options = {"journal": str(tmp_path / "journal.sqlite3"), "unknown_outcome_window": 0.3, "fill_grace": 1.0}
    with LiveRun(emu, store, SYMBOL, **options) as run:
        s = run.strategy
        buy = run.do(lambda s: s.buy(size=0.02))
        run.until(lambda: "Completed" in s.statuses(buy), "the market buy")
        cid = buy.info.client_order_id
        assert cid.isalnum() and len(cid) <= 32  # OKX's clOrdId rule
        (fill,) = emu.fills(client_order_id=cid)
        assert buy.executed.size == pytest.approx(0.02) and buy.executed.price == pytest.approx(float(fill.price))
        assert buy.executed.comm > 0

        far = float((emu.engine.last_price("BTCUSDT") * 2).quantize(emu.engine.market("BTCUSDT").tick_size))
        limit = run.do(lambda s: s.sell(size=0.01, exectype=bt.Order.Limit, price=far))
        assert emu.order(client_order_id=limit.info.client_order_id).status.is_open
        run.do(lambda s: s.cancel(limit))
        run.until(lambda: "Canceled" in s.statuses(limit), "the cancel")
        assert emu.order(client_order_id=limit.info.client_order_id).status is EngineStatus.CANCELED

        # Stops are declared off (OKX files them as algo orders): each kind is Rejected, saying
        # why and what to use, and nothing reaches the exchange.
        low = far / 4
        stop = run.do(lambda s: s.sell(size=0.01, exectype=bt.Order.Stop, price=low))
        stop_limit = run.do(lambda s: s.sell(size=0.01, exectype=bt.Order.StopLimit, price=low, plimit=low))
        trail = run.do(lambda s: s.sell(size=0.01, exectype=bt.Order.StopTrail, trailamount=100.0))
        for order, kind in ((stop, "Stop"), (stop_limit, "StopLimit"), (trail, "StopTrail")):
            run.until(lambda o=order: "Rejected" in s.statuses(o), f"the {kind} order's rejection")
            assert f"okx: {kind} orders are not supported live" in order.info.reject_reason
            assert "use Market or Limit orders, or paper mode" in order.info.reject_reason
        # A bracket goes whole or not at all: its stop exit is refused, so its entry is never sent.
        orders_before = len(emu.orders())
        bracket = run.do(lambda s: tuple(s.buy_bracket(size=0.01, exectype=bt.Order.Limit, price=far / 3,
                                                      stopprice=low, limitprice=far)))  # fmt: skip
        run.until(lambda: all("Rejected" in s.statuses(o) for o in bracket), "the bracket's rejection")
        assert "okx: Stop orders are not supported live" in " ".join(o.info.reject_reason for o in bracket)
        assert len(emu.orders()) == orders_before  # neither the stops nor the bracket reached OKX
        # Positions count filled amounts, as a backtest does; the fee OKX took in BTC is commission.
        assert run.broker.getposition(s.data).size == pytest.approx(0.02)
