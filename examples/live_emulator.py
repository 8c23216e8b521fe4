"""Live trading against the in-process exchange emulator: real orders, real fills, offline.

The exchange is loaded by name, an emulated exchange starts on 127.0.0.1 with a synthetic
market running fast (300x: a 1-minute candle every 0.2 s) and an account holding 10,000 USDT,
and the broker runs in live mode: every order goes through ccxt to the emulator's REST API and
its status and fills come back over the exchange's private WebSocket stream, exactly as they
would from the real exchange. The strategy buys, closes the position a few bars later, parks a
limit order far below the market and cancels it, then opens a bracket (a market entry with a
take-profit and a stop 0.2% away, both resting on the exchange once the entry has filled: a
Binance OCO list, two Bybit conditional orders) and stops itself once the bracket has exited.

    python examples/live_emulator.py [binance|bybit] [--bars N]

To trade a real account instead, change only the store: ``get_store("binance", "testnet",
api_key=..., secret=...)``; mainnet also needs ``getbroker(mode="live", allow_mainnet=True)``.
"""

from __future__ import annotations

import argparse

import backtrader as bt

from realtrade_core.store import get_store


class BuyCloseCancel(bt.Strategy):
    params = (("bars", 10), ("size", 0.01))

    def __init__(self) -> None:
        self.live = False
        self.live_bars = 0
        self.parked = None
        self.bracket: list = []

    def notify_data(self, data, status, *args, **kwargs) -> None:
        print(f"data   {data._getstatusname(status)}")
        self.live = data._getstatusname(status) == "LIVE"

    def notify_store(self, msg, *args, **kwargs) -> None:
        print(f"store  {msg}")

    def notify_order(self, order) -> None:
        side = "BUY " if order.isbuy() else "SELL"
        kind = order.getordername()
        if order.status == order.Completed:
            ex = order.executed
            print(f"order  {side} {kind} Completed {abs(ex.size):.5f} @ {ex.price:,.2f} fee {ex.comm:.4f} USDT")
        elif order.status in (order.Canceled, order.Rejected, order.Expired):
            reason = order.info.get("reject_reason") or ""
            print(f"order  {side} {kind} {order.getstatusname()} {reason}".rstrip())
        else:
            print(f"order  {side} {kind} {order.getstatusname()}")

    def notify_trade(self, trade) -> None:
        if trade.isclosed:
            print(f"trade  closed: pnl {trade.pnl:+.4f}, after fees {trade.pnlcomm:+.4f} USDT")

    def next(self) -> None:
        if not self.live:
            return  # the backfilled history: nothing to trade on yet
        self.live_bars += 1
        if self.live_bars == 1:
            self.buy(size=self.p.size)
        elif self.live_bars == 4 and self.position:
            self.close()  # sells exactly the BTC the account holds (the buy's fee was paid in BTC)
        elif self.live_bars == 5:
            self.parked = self.buy(size=self.p.size, exectype=bt.Order.Limit, price=round(self.data.close[0] * 0.9, 2))
        elif self.live_bars == 7 and self.parked is not None:
            self.cancel(self.parked)
        elif self.live_bars == 8:
            price = self.data.close[0]
            self.bracket = self.buy_bracket(size=self.p.size, exectype=bt.Order.Market,
                                            limitprice=round(price * 1.002, 2), stopprice=round(price * 0.998, 2))
        bracket_done = self.bracket and not any(o.alive() for o in self.bracket)
        if self.live_bars >= self.p.bars and (not self.bracket or bracket_done or self.live_bars > self.p.bars + 300):
            self.env.runstop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exchange", nargs="?", default="binance", help="exchange plugin (default: binance)")
    parser.add_argument("--bars", type=int, default=10, help="live bars to run before stopping (default: 10)")
    args = parser.parse_args()

    store = get_store(
        args.exchange,
        venue="emulator",
        emulator_options={"speed": 300, "symbols": ("BTC/USDT",), "balances": {"USDT": 10_000}},
    )
    cerebro = bt.Cerebro()
    cerebro.adddata(store.getdata(dataname="BTC/USDT", timeframe="1m", backfill_bars=2, qcheck=0.05))
    broker = store.getbroker(mode="live")
    cerebro.setbroker(broker)
    cerebro.addstrategy(BuyCloseCancel, bars=args.bars)
    try:
        cerebro.run()
        print(f"final  cash {broker.getcash():,.2f} USDT, value {broker.getvalue():,.2f} USDT")
    finally:
        store.stop()


if __name__ == "__main__":
    main()
