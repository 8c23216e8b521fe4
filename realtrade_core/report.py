"""The run report: what a strategy did in one Cerebro run, printed and written to files.

:class:`RunRecorder` is a backtrader analyzer: add it to any Cerebro (``realtrade run`` and
``realtrade demo`` do) and it records the broker's value on every bar, each closed trade, the
final status of every order and the fees paid. :func:`build_report` turns it into numbers
(P&L, return, maximum drawdown, fees, trades won and lost, orders by status),
:func:`format_report` into lines for the terminal, and :func:`write_report` into files:
``report.json`` (everything), ``trades.csv``, ``equity.csv`` and, when matplotlib is installed
(``pip install "realtrade-core[plot]"``), ``equity.png``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any

import backtrader as bt

log = logging.getLogger(__name__)

__all__ = ["RunRecorder", "build_report", "format_report", "write_report"]

_OPEN_STATUSES = (bt.Order.Created, bt.Order.Submitted, bt.Order.Accepted, bt.Order.Partial)
TRADE_COLUMNS = (
    "ref", "symbol", "opened", "closed", "bars", "size", "entry_price", "pnl", "fees", "pnl_after_fees",
)  # fmt: skip


class RunRecorder(bt.Analyzer):
    """Records value per bar, closed trades, orders by final status and fees for the report."""

    def start(self) -> None:
        broker = self.strategy.broker
        self.starting_value = float(broker.getvalue())
        self.final_value = self.starting_value
        self.equity: list[tuple[str, float]] = []
        self.trades: list[dict[str, Any]] = []
        self.orders: Counter[str] = Counter()
        self.fees = 0.0
        self._largest: dict[int, float] = {}  # trade ref -> largest size it reached

    def notify_order(self, order: Any) -> None:
        if order.status in _OPEN_STATUSES:
            return
        # Counted once, at the order's final status: executed.comm is the order's whole fee,
        # partial fills included (an order cancelled after a partial fill paid for that part).
        self.orders[order.getstatusname()] += 1
        self.fees += float(order.executed.comm or 0.0)

    def notify_trade(self, trade: Any) -> None:
        self._largest[trade.ref] = max(self._largest.get(trade.ref, 0.0), abs(float(trade.size)))
        if not trade.isclosed:
            return
        self.trades.append(
            {
                "ref": trade.ref,
                "symbol": trade.data._name or getattr(trade.data.p, "dataname", ""),
                "opened": _iso(trade.dtopen),
                "closed": _iso(trade.dtclose),
                "bars": int(trade.barlen),
                "size": self._largest.pop(trade.ref, 0.0),
                "entry_price": float(trade.price),
                "pnl": float(trade.pnl),
                "fees": float(trade.commission),
                "pnl_after_fees": float(trade.pnlcomm),
            }
        )

    def next(self) -> None:
        self.final_value = float(self.strategy.broker.getvalue())
        self.equity.append((self.strategy.datetime.datetime(0).isoformat(), self.final_value))

    def stop(self) -> None:
        self.final_value = float(self.strategy.broker.getvalue())

    def get_analysis(self) -> dict[str, Any]:
        return build_report(self)


def _iso(num: float) -> str:
    return bt.num2date(num).isoformat() if num else ""


def build_report(recorder: RunRecorder, **about: Any) -> dict[str, Any]:
    """The run's numbers from a finished :class:`RunRecorder`; ``about`` (exchange, venue,
    symbols ...) is copied in first."""
    start, end = recorder.starting_value, recorder.final_value
    peak, drawdown, drawdown_pct = start, 0.0, 0.0
    for value in [start, *(v for _, v in recorder.equity), end]:
        peak = max(peak, value)
        if peak > 0 and peak - value > drawdown:
            drawdown, drawdown_pct = peak - value, (peak - value) / peak * 100
    trades = recorder.trades
    won = sum(1 for t in trades if t["pnl_after_fees"] > 0)
    return {
        **about,
        "first_bar": recorder.equity[0][0] if recorder.equity else None,
        "last_bar": recorder.equity[-1][0] if recorder.equity else None,
        "bars": len(recorder.equity),
        "starting_value": start,
        "final_value": end,
        "pnl": end - start,
        "return_pct": (end - start) / start * 100 if start else math.nan,
        "max_drawdown": drawdown,
        "max_drawdown_pct": drawdown_pct,
        "fees": recorder.fees,
        "trades_closed": len(trades),
        "trades_won": won,
        "trades_lost": len(trades) - won,
        "trades_pnl_after_fees": sum(t["pnl_after_fees"] for t in trades),
        "orders": dict(sorted(recorder.orders.items())),
        "trades": trades,
    }


def format_report(report: dict[str, Any]) -> list[str]:
    """The report as a few aligned terminal lines."""
    orders = ", ".join(f"{n} {status}" for status, n in report["orders"].items()) or "none"
    return [
        f"report  value     {report['starting_value']:,.2f} -> {report['final_value']:,.2f} "
        f"({report['pnl']:+,.2f}, {report['return_pct']:+.2f} %)",
        f"report  trades    {report['trades_closed']} closed "
        f"({report['trades_won']} won, {report['trades_lost']} lost), "
        f"pnl after fees {report['trades_pnl_after_fees']:+,.4f}",
        f"report  drawdown  {report['max_drawdown']:,.2f} ({report['max_drawdown_pct']:.2f} %) at most",
        f"report  fees      {report['fees']:,.4f}",
        f"report  orders    {orders}",
    ]


def write_report(directory: str | Path, report: dict[str, Any], recorder: RunRecorder) -> list[Path]:
    """Write ``report.json``, ``trades.csv``, ``equity.csv`` and (with matplotlib)
    ``equity.png`` into ``directory`` (created); returns the files written."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "report.json", folder / "trades.csv", folder / "equity.csv"]
    full = {**report, "equity": [{"time": t, "value": v} for t, v in recorder.equity]}
    written[0].write_text(json.dumps(full, indent=2, default=str) + "\n", encoding="utf-8")
    with written[1].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=TRADE_COLUMNS)
        writer.writeheader()
        writer.writerows(report["trades"])
    with written[2].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("time", "value"))
        writer.writerows(recorder.equity)
    png = _plot_equity(folder / "equity.png", recorder.equity, report)
    if png is not None:
        written.append(png)
    return written


def _plot_equity(path: Path, equity: list[tuple[str, float]], report: dict[str, Any]) -> Path | None:
    try:
        from matplotlib.figure import Figure  # the optional "plot" extra; no pyplot, no GUI backend
    except ImportError:
        log.info("matplotlib is not installed: no equity.png (pip install 'realtrade-core[plot]')")
        return None
    if not equity:
        return None
    from datetime import datetime

    figure = Figure(figsize=(9, 4), dpi=100)
    axes = figure.subplots()
    axes.plot([datetime.fromisoformat(t) for t, _ in equity], [v for _, v in equity], linewidth=1.2)
    axes.set_title(
        f"value: {report['starting_value']:,.2f} -> {report['final_value']:,.2f} ({report['return_pct']:+.2f} %)"
    )
    axes.set_ylabel("broker value")
    axes.ticklabel_format(axis="y", style="plain", useOffset=False)
    axes.grid(True, alpha=0.3)
    figure.autofmt_xdate()
    figure.savefig(path)
    return path
