"""Two markets in one Cerebro: live BTC/USDT and ETH/USDT bars, one strategy trading both.

One store serves both feeds (one WebSocket connection carries both candle streams) and one
paper broker holds both positions. The strategy handles each data on its own: it buys a market
on its first live bar and closes it ``hold`` bars later, then stops once both round trips are
done. Bars of the two markets close together, so ``next`` sees them aligned by time.

    python examples/two_symbols.py [binance|bybit]

Runs offline against the in-process emulator; ``venue="testnet"`` or ``"mainnet"`` is the only
change needed to read real markets.
"""

from __future__ import annotations

import sys

import backtrader as bt

import realtrade_core as rt

SYMBOLS = ("BTC/USDT", "ETH/USDT")
STAKE = {"BTC/USDT": 0.01, "ETH/USDT": 0.2}


class TradeEach(bt.Strategy):
    params = (("hold", 3),)

    def __init__(self) -> None:
        self.live: set[str] = set()
        self.entered: dict[str, int] = {}  # symbol -> the bar count at entry
        self.closed: set[str] = set()

    def notify_data(self, data, status, *args, **kwargs) -> None:
        state = data._getstatusname(status)
        print(f"data   {data._name}: {state}")
        if state == "LIVE":
            self.live.add(data._name)

    def notify_order(self, order) -> None:
        if order.status == order.Completed:
            side = "BUY " if order.isbuy() else "SELL"
            ex = order.executed
            print(f"order  {order.data._name} {side} {abs(ex.size):.4f} @ {ex.price:.2f}")

    def notify_trade(self, trade) -> None:
        if trade.isclosed:
            self.closed.add(trade.data._name)
            print(f"trade  {trade.data._name} closed, pnl after fees {trade.pnlcomm:+.4f}")

    def next(self) -> None:
        for data in self.datas:
            name = data._name
            if name not in self.live:
                continue  # history bars warm up; an order on them would be rejected
            position = self.getposition(data)
            if name not in self.entered:
                self.buy(data=data, size=STAKE[name])
                self.entered[name] = len(data)
            elif position and len(data) - self.entered[name] >= self.p.hold:
                self.close(data=data)
        if self.closed == set(SYMBOLS):
            self.env.runstop()


def main(exchange: str = "binance") -> None:
    store = rt.get_store(exchange, venue="emulator", emulator_options={"speed": 600, "symbols": SYMBOLS})
    cerebro = bt.Cerebro()
    for symbol in SYMBOLS:
        # each data named after its symbol: the strategy tells them apart by it
        cerebro.adddata(store.getdata(dataname=symbol, timeframe="1m", backfill_bars=5), name=symbol)
    cerebro.setbroker(store.getbroker(cash=10_000.0))
    cerebro.addstrategy(TradeEach)
    try:
        cerebro.run()
    finally:
        store.stop()
    print(f"final  value {cerebro.broker.getvalue():.2f} USDT")


if __name__ == "__main__":
    main(*sys.argv[1:])
