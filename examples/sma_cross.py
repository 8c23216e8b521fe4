"""A plain backtrader strategy file for `realtrade run`: nothing in it is specific to realtrade.

    realtrade run examples/sma_cross.py --exchange binance --symbol BTC/USDT --timeframe 1m --speed 60 --bars 30
    realtrade run --config examples/run.toml

Buys when the fast average crosses above the slow one, sells when it crosses below. The bars
of history before the first live bar warm the averages up; an order made on them would be
rejected (history bars never trade), so it trades from the first live bar on.
"""

import backtrader as bt


class SmaCross(bt.Strategy):
    params = (("fast", 5), ("slow", 20), ("stake", 1000.0))

    def __init__(self):
        self.cross = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow))
        self.live = False

    def notify_data(self, data, status, *args, **kwargs):
        self.live = data._getstatusname(status) == "LIVE"
        print(f"data    {data._name}: {data._getstatusname(status)}")

    def notify_order(self, order):
        if order.status == order.Completed:
            side = "BUY " if order.isbuy() else "SELL"
            print(f"order   {side} {abs(order.executed.size):.5f} @ {order.executed.price:,.2f}")

    def notify_trade(self, trade):
        if trade.isclosed:
            print(f"trade   closed, pnl after fees {trade.pnlcomm:+.4f}")

    def next(self):
        if not self.live:
            return
        if self.cross > 0 and not self.position:
            self.buy(size=round(self.p.stake / self.data.close[0], 5))
        elif self.cross < 0 and self.position:
            self.close()
