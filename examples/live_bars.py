"""Live bars from an exchange loaded by name, in a plain backtrader Cerebro script.

Runs offline: the store starts an in-process emulator of the exchange (a seeded synthetic
market, here at 600x speed so a 1-minute candle closes every 0.1 s). Change the venue to
"testnet" or "mainnet" and nothing else in the script changes.

    python examples/live_bars.py [binance|bybit]
"""

import sys

import backtrader as bt

import realtrade_core as rt


class PrintBars(bt.Strategy):
    params = (("bars", 10),)

    def __init__(self):
        self.live_bars = 0
        self.sma = bt.ind.SMA(period=5)

    def notify_data(self, data, status, *args, **kwargs):
        print(f"{data._name}: {data._getstatusname(status)}")

    def next(self):
        bar = self.data
        state = "live" if self.data._laststatus == self.data.LIVE else "history"
        print(
            f"{bar.datetime.datetime(0):%Y-%m-%d %H:%M} {state:7} O {bar.open[0]:.2f} H {bar.high[0]:.2f} "
            f"L {bar.low[0]:.2f} C {bar.close[0]:.2f} V {bar.volume[0]:.4f} SMA5 {self.sma[0]:.2f}"
        )
        if state == "live":
            self.live_bars += 1
            if self.live_bars >= self.p.bars:
                self.env.runstop()


def main(exchange: str = "binance") -> None:
    store = rt.get_store(exchange, venue="emulator", emulator_options={"speed": 600, "symbols": ("BTC/USDT",)})
    cerebro = bt.Cerebro()
    # 8 closed candles of history, then live bars
    cerebro.adddata(store.getdata(dataname="BTC/USDT", timeframe="1m", backfill_bars=8))
    cerebro.addstrategy(PrintBars)
    try:
        cerebro.run()
    finally:
        store.stop()


if __name__ == "__main__":
    main(*sys.argv[1:])
