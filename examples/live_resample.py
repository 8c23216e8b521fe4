"""Live resampling: 1-minute bars from the exchange, 5-minute bars built from them as they close.

``cerebro.resampledata`` works on a live feed as in a backtest: each 5m bar is delivered as soon
as its last 1m candle has closed and arrived (realtrade stamps a bar with its candle's close
time, backtrader's right edge for resampling, so the 5m bars are exactly the exchange's 5m
candles). The strategy gets both: ``datas[0]`` is the 1m feed, ``datas[1]`` the 5m one, and a
5m bar arrives on the same ``next`` as the 1m bar that completes it.

    python examples/live_resample.py [binance|bybit] [--bars N]

Runs offline against the in-process emulator (600x: a 1m candle every 0.1 s, a 5m bar every
0.5 s); change the venue to read a real exchange.
"""

from __future__ import annotations

import argparse

import backtrader as bt

import realtrade_core as rt


class PrintBoth(bt.Strategy):
    params = (("bars", 3),)

    def __init__(self) -> None:
        self.live = False
        self.live_5m = 0
        self.seen_5m = 0  # length of the 5m feed at the last next()

    def notify_data(self, data, status, *args, **kwargs) -> None:
        state = data._getstatusname(status)
        print(f"data {data._name}: {state}")
        if state == "LIVE":
            self.live = True

    def next(self) -> None:
        one, five = self.datas
        state = "live" if self.live else "history"
        print(f"1m   {one.datetime.datetime(0):%Y-%m-%d %H:%M} {state:7} {_ohlcv(one)}")
        if len(five) == self.seen_5m:
            return  # no new 5m bar: its period is still open
        self.seen_5m = len(five)
        print(f"5m   {five.datetime.datetime(0):%Y-%m-%d %H:%M} {state:7} {_ohlcv(five)}")
        if self.live:
            self.live_5m += 1
            if self.live_5m >= self.p.bars:
                self.env.runstop()

    # Before the 5m feed has its first bar, backtrader calls prenext: print those 1m bars too.
    prenext = next


def _ohlcv(data) -> str:
    return f"O {data.open[0]:.2f} H {data.high[0]:.2f} L {data.low[0]:.2f} C {data.close[0]:.2f} V {data.volume[0]:.6f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exchange", nargs="?", default="binance", help="exchange plugin (default: binance)")
    parser.add_argument("--bars", type=int, default=3, help="live 5m bars to print before stopping (default: 3)")
    args = parser.parse_args()

    store = rt.get_store(args.exchange, venue="emulator", emulator_options={"speed": 600, "symbols": ("BTC/USDT",)})
    cerebro = bt.Cerebro()
    # qcheck: how long cerebro waits for a 1m bar before it looks at the clock again (resampling
    # closes a period on time, not only when the next bar comes)
    data = store.getdata(dataname="BTC/USDT", timeframe="1m", backfill_bars=12, qcheck=0.05)
    cerebro.adddata(data, name="BTC/USDT 1m")
    cerebro.resampledata(data, name="BTC/USDT 5m", timeframe=bt.TimeFrame.Minutes, compression=5)
    cerebro.addstrategy(PrintBoth, bars=args.bars)
    try:
        cerebro.run()
    finally:
        store.stop()


if __name__ == "__main__":
    main()
