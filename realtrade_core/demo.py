"""``realtrade demo``: a backtrader strategy paper-trading live bars from an in-process emulator.

The quickest way to see realtrade work on a fresh machine, offline: an emulated exchange starts
on 127.0.0.1 with a seeded synthetic market running fast (600x: a 1-minute candle every 0.1 s),
a store loads the exchange by name, the feed backfills history and goes live over the exchange's
WebSocket protocol, and a moving-average strategy trades on the paper broker.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

DEFAULT_BARS = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exchange", default="binance", help="exchange plugin to use (default: binance)")
    parser.add_argument("--symbol", default="BTC/USDT", help="market (default: BTC/USDT)")
    parser.add_argument("--bars", type=int, default=DEFAULT_BARS, help=f"live bars to trade (default: {DEFAULT_BARS})")
    parser.add_argument("--speed", type=float, default=600.0, help="emulated clock speed factor (default: 600)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic market (default: 1)")
    parser.add_argument("--cash", type=float, default=10_000.0, help="paper cash in the quote asset")


def build_strategy(bars: int) -> type:
    import backtrader as bt

    class SmaCross(bt.Strategy):
        """Buy when the fast average crosses above the slow one, sell when it crosses below."""

        params = (("fast", 5), ("slow", 20), ("live_bars", bars))

        def __init__(self) -> None:
            self.cross = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow))
            self.live = False
            self.live_seen = 0
            self.orders = 0
            self.closed_trades = 0

        def notify_data(self, data: Any, status: int, *args: Any, **kwargs: Any) -> None:
            name = data._getstatusname(status)
            print(f"data    {data._name}: {name}")
            self.live = name == "LIVE"

        def notify_order(self, order: Any) -> None:
            if order.status == order.Completed:
                self.orders += 1
                side = "BUY " if order.isbuy() else "SELL"
                print(
                    f"order   {side} {abs(order.executed.size):.4f} @ {order.executed.price:,.2f} "
                    f"fee {order.executed.comm:.4f}"
                )
            elif order.status in (order.Rejected, order.Margin, order.Canceled):
                print(f"order   {order.getstatusname()}: {order.info.get('reject_reason', '')}")

        def notify_trade(self, trade: Any) -> None:
            if trade.isclosed:
                self.closed_trades += 1
                print(f"trade   closed, pnl {trade.pnlcomm:+.4f}")

        def next(self) -> None:
            if self.live:
                self.live_seen += 1
                if self.live_seen >= self.p.live_bars:
                    self.env.runstop()
            if not self.live:
                return  # history bars warm the averages up; orders made on them would be rejected
            size = round(1_000.0 / self.data.close[0], 5)
            if self.cross > 0 and not self.position:
                self.buy(size=size)
            elif self.cross < 0 and self.position:
                self.close()

    return SmaCross


def run(args: argparse.Namespace) -> int:
    import backtrader as bt

    from .store import get_store

    started = time.monotonic()
    store = get_store(
        args.exchange,
        "emulator",
        emulator_options={"symbols": (args.symbol,), "speed": args.speed, "seed": args.seed, "history": 300},
    )
    cerebro = bt.Cerebro()
    cerebro.adddata(store.getdata(dataname=args.symbol, timeframe="1m", backfill_bars=50, qcheck=0.1))
    cerebro.setbroker(store.getbroker(cash=args.cash))
    cerebro.addstrategy(build_strategy(args.bars))
    print(f"realtrade demo: {args.exchange} emulator, {args.symbol} 1m at {args.speed:g}x, paper cash {args.cash:,.2f}")
    try:
        (strategy,) = cerebro.run()
    finally:
        store.stop()
    value = cerebro.broker.getvalue()
    print(
        f"done    {strategy.live_seen} live bars, {strategy.orders} orders filled, "
        f"{strategy.closed_trades} trades closed, final value {value:,.2f} "
        f"({value - args.cash:+,.2f}) in {time.monotonic() - started:.1f} s"
    )
    return 0
