"""Paper trading: a moving-average crossover on live bars, with simulated cash and fills.

Paper mode is the default broker mode: backtrader's own BackBroker with the exchange's rules (lot
step, tick, minimums, the buy's fee taken in the coin), so this strategy makes the same trades
here as in a backtest on the same candles given the same rules (``store.backtest_broker``). The
commission is the exchange's taker fee for the market.

    python examples/paper_trading.py [binance|bybit]
"""

import sys

import backtrader as bt

import realtrade_core as rt


class SmaCross(bt.Strategy):
    params = (("fast", 3), ("slow", 8), ("bars", 40))

    def __init__(self):
        self.cross = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow))
        self.seen = 0

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
        if self.cross > 0 and not self.position:
            self.buy(size=0.01)
        elif self.cross < 0 and self.position:
            self.close()


def main(exchange: str = "binance") -> None:
    store = rt.get_store(exchange, venue="emulator", emulator_options={"speed": 600, "symbols": ("BTC/USDT",)})
    cerebro = bt.Cerebro()
    cerebro.adddata(store.getdata(dataname="BTC/USDT", timeframe="1m", backfill_bars=30))
    cerebro.setbroker(store.getbroker(cash=10_000.0))  # mode="paper" is the default
    cerebro.addstrategy(SmaCross)
    try:
        cerebro.run()
    finally:
        store.stop()
    print(f"final value: {cerebro.broker.getvalue():.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
