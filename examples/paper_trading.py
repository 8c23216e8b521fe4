"""Paper trading on mainnet data: a moving-average crossover on the real market's live bars,
with simulated cash and fills.

Public market data needs no API key, and a paper broker sends nothing to the exchange: this is
the safe way to watch a strategy on the real market. Paper mode is the default broker mode:
backtrader's own BackBroker with the exchange's rules (lot step, tick, minimums, the buy's fee
taken in the coin), so the strategy makes the same trades here as in a backtest on the same
candles given the same rules (``store.backtest_broker``). The commission is the exchange's
taker fee for the market.

    python examples/paper_trading.py [binance|bybit]                   # mainnet data (network)
    python examples/paper_trading.py binance --venue emulator           # offline, 600x speed

On mainnet a 1-minute bar closes once a minute: the run takes ``--bars`` minus the 30 bars of
history, about ten minutes by default. With ``--venue emulator`` it runs against the in-process
emulator (how the tests run it) and ends in seconds.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import backtrader as bt

import realtrade_core as rt


class SmaCross(bt.Strategy):
    params = (("fast", 3), ("slow", 8), ("bars", 40))

    def __init__(self):
        self.cross = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow))
        self.seen = 0
        self.live = False

    def notify_data(self, data, status, *args, **kwargs):
        self.live = data._getstatusname(status) == "LIVE"
        print(f"data {data._name}: {data._getstatusname(status)}")

    def notify_order(self, order):
        if order.status == order.Completed:
            side = "BUY " if order.isbuy() else "SELL"
            print(f"{side} {order.executed.size:+.4f} @ {order.executed.price:.2f} fee {order.executed.comm:.4f}")

    def notify_trade(self, trade):
        if trade.isclosed:
            print(f"trade closed: pnl {trade.pnlcomm:+.4f}")

    def next(self):
        self.seen += 1
        if self.seen >= self.p.bars:
            self.env.runstop()
        if not self.live:
            return  # the history bars warm the averages up; an order on them would be rejected
        if self.cross > 0 and not self.position:
            self.buy(size=0.01)
        elif self.cross < 0 and self.position:
            self.close()


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exchange", nargs="?", default="binance", help="exchange plugin (default: binance)")
    parser.add_argument("--venue", choices=("mainnet", "testnet", "emulator"), default="mainnet",
                        help="whose market data (default: mainnet, the real market)")  # fmt: skip
    parser.add_argument("--bars", type=int, default=40, help="bars to run, history included (default: 40)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    # Only the store knows the venue: the strategy, the data and the broker are the same on each.
    options = {"emulator_options": {"speed": 600, "symbols": ("BTC/USDT",)}} if args.venue == "emulator" else {}
    store = rt.get_store(args.exchange, venue=args.venue, **options)
    cerebro = bt.Cerebro()
    cerebro.adddata(store.getdata(dataname="BTC/USDT", timeframe="1m", backfill_bars=30))
    cerebro.setbroker(store.getbroker(cash=10_000.0))  # mode="paper" is the default: no key, no real order
    cerebro.addstrategy(SmaCross, bars=args.bars)
    try:
        cerebro.run()
    finally:
        store.stop()
    print(f"final value: {cerebro.broker.getvalue():.2f}")


if __name__ == "__main__":
    main()
