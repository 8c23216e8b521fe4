"""``realtrade demo``: a backtrader strategy paper-trading live bars from an in-process emulator.

The quickest way to see realtrade work on a fresh machine, offline: an emulated exchange starts
on 127.0.0.1 with a seeded synthetic market running fast (600x: a 1-minute candle every 0.1 s),
a store loads the exchange by name, the feed backfills history and goes live over the exchange's
WebSocket protocol, and a moving-average strategy trades on the paper broker. With ``--market
perpetual`` it trades the USDT perpetual contract long and short (2x leverage), reversing on
every cross.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import click

from .arguments import did_you_mean

DEFAULT_BARS = 60
#: The markets the demo's synthetic exchange offers (a seeded random walk from a plausible price).
DEMO_MARKETS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT", "DOGE/USDT", "ETH/BTC")


def _check_symbol(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value.upper() in DEMO_MARKETS:
        return value.upper()
    raise click.BadParameter(
        f"the demo has no market {value!r}.{did_you_mean(value.upper(), DEMO_MARKETS, cutoff=0.8)} "
        f"It offers {', '.join(DEMO_MARKETS)}; for others use `realtrade run` on a venue that lists them"
    )


@click.command("demo", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--exchange", default="binance", show_default=True, help="Exchange plugin whose emulator to use.")
@click.option("--symbol", default="BTC/USDT", show_default=True, callback=_check_symbol,
              help=f"Market: one of {', '.join(DEMO_MARKETS)}.")  # fmt: skip
@click.option("--market", "market_type", type=click.Choice(["spot", "perpetual"]), default="spot", show_default=True,
              help="spot, or the symbol's USDT perpetual contract traded long and short (2x leverage).")  # fmt: skip
@click.option("--bars", type=click.IntRange(min=1), default=DEFAULT_BARS, show_default=True, help="Live bars to trade.")
@click.option("--speed", type=click.FloatRange(min=0, min_open=True), default=600.0, show_default=True,
              help="Emulated clock speed factor (600: a 1-minute candle every 0.1 s).")  # fmt: skip
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the synthetic market.")
@click.option("--cash", type=click.FloatRange(min=0, min_open=True), default=10_000.0, show_default=True,
              help="Paper cash in the quote asset.")  # fmt: skip
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="Write the run report's files (report.json, trades.csv, equity.csv, equity.png) here.")  # fmt: skip
def command(**options: Any) -> int:
    """Paper-trade a moving-average strategy on live bars from an in-process emulator.

    Offline, no API keys: an emulated exchange starts on 127.0.0.1 with a seeded synthetic
    market, the feed backfills 50 bars of history and goes live over the exchange's WebSocket
    protocol, and the strategy trades on live bars only. Ends with the run report.
    """
    return run(argparse.Namespace(**options))


def build_strategy(bars: int, long_short: bool = False) -> type:
    import backtrader as bt

    class SmaCross(bt.Strategy):
        """Buy when the fast average crosses above the slow one, sell when it crosses below
        (``long_short``: hold a long above and a short below, one order reversing the position)."""

        params = (("fast", 5), ("slow", 20), ("live_bars", bars), ("long_short", long_short))

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
            elif trade.justopened and self.p.long_short:
                print(f"trade   opened {'long' if trade.size > 0 else 'short'} {abs(trade.size):.4f}")

        def notify_store(self, msg: Any, *args: Any, **kwargs: Any) -> None:
            if str(msg).startswith("funding:"):
                print(msg)

        def next(self) -> None:
            if self.live:
                self.live_seen += 1
                if self.live_seen >= self.p.live_bars:
                    self.env.runstop()
            if not self.live:
                return  # history bars warm the averages up; orders made on them would be rejected
            size = round(1_000.0 / self.data.close[0], 3 if self.p.long_short else 5)
            held = self.position.size
            if self.p.long_short:
                if self.cross > 0 and held <= 0:
                    self.buy(size=size - held)  # from short (or flat) to long in one order
                elif self.cross < 0 and held >= 0:
                    self.sell(size=size + held)
                return
            if self.cross > 0 and not self.position:
                self.buy(size=size)
            elif self.cross < 0 and self.position:
                self.close()

    return SmaCross


def run(args: argparse.Namespace) -> int:
    import backtrader as bt

    from .report import RunRecorder
    from .run import EXIT_INTERRUPTED, finish_report, watch_interrupt
    from .store import get_store

    started = time.monotonic()
    market_type = getattr(args, "market_type", "spot")
    perpetual = market_type == "perpetual"
    symbol = args.symbol
    if perpetual:
        quote = symbol.split("/")[1]
        if quote != "USDT":
            raise click.BadParameter(
                f"{symbol} has no USDT perpetual contract; use a */USDT market with --market perpetual",
                param_hint="'--symbol'",
            )
        symbol = f"{symbol}:{quote}"
    store = get_store(
        args.exchange,
        "emulator",
        market_type=market_type,
        emulator_options={"symbols": (symbol,), "speed": args.speed, "seed": args.seed, "history": 300},
    )
    cerebro = bt.Cerebro()
    cerebro.adddata(store.getdata(dataname=symbol, timeframe="1m", backfill_bars=50, qcheck=0.1))
    cerebro.setbroker(store.getbroker(cash=args.cash, leverage=2) if perpetual else store.getbroker(cash=args.cash))
    cerebro.addstrategy(build_strategy(args.bars, long_short=perpetual))
    cerebro.addanalyzer(RunRecorder, _name="realtrade_report")
    what = f"{symbol} perpetual, long and short at 2x" if perpetual else symbol
    print(f"realtrade demo: {args.exchange} emulator, {what} 1m at {args.speed:g}x, paper cash {args.cash:,.2f}")
    strategies: list[Any] = []
    try:
        with watch_interrupt() as interrupt:
            interrupt["cerebro"] = cerebro  # Ctrl-C stops it between steps, so the report counts every order
            try:
                strategies = cerebro.run()
            except KeyboardInterrupt:  # outside the loop the run guard covers
                interrupt["hit"] = True
    finally:
        store.stop()
    if strategies:
        (strategy,) = strategies
        value = cerebro.broker.getvalue()
        print(
            f"done    {strategy.live_seen} live bars, {strategy.orders} orders filled, "
            f"{strategy.closed_trades} trades closed, final value {value:,.2f} "
            f"({value - args.cash:+,.2f}) in {time.monotonic() - started:.1f} s"
        )
        finish_report(strategy.analyzers.realtrade_report, args.report_dir, exchange=args.exchange, venue="emulator",
                      mode="paper", symbols=[symbol], timeframe="1m", strategy="SmaCross")  # fmt: skip
    return EXIT_INTERRUPTED if interrupt["hit"] else 0
