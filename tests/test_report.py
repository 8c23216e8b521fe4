"""The run report: its numbers, its files, and the demo's report holding the demo's run."""

from __future__ import annotations

import csv
import json
import re
import sys
from types import SimpleNamespace

import pytest

from realtrade_core.cli import main
from realtrade_core.report import build_report, format_report, write_report


def recorder(values: list[float], trades: list[dict] | None = None) -> SimpleNamespace:
    equity = [(f"2024-01-01T00:{i:02d}:00", v) for i, v in enumerate(values)]
    return SimpleNamespace(
        starting_value=values[0], final_value=values[-1], equity=equity, trades=trades or [],
        orders={"Completed": 4, "Canceled": 1}, fees=2.5,
    )  # fmt: skip


def test_return_drawdown_and_trade_counts():
    trades = [{"pnl_after_fees": 12.0}, {"pnl_after_fees": -2.0}, {"pnl_after_fees": 0.0}]
    report = build_report(recorder([100.0, 120.0, 90.0, 130.0, 117.0], trades), exchange="binance")
    assert report["exchange"] == "binance"
    assert report["pnl"] == pytest.approx(17.0) and report["return_pct"] == pytest.approx(17.0)
    assert report["max_drawdown"] == pytest.approx(30.0) and report["max_drawdown_pct"] == pytest.approx(25.0)
    assert (report["trades_closed"], report["trades_won"], report["trades_lost"]) == (3, 1, 2)
    assert report["trades_pnl_after_fees"] == pytest.approx(10.0)
    lines = format_report(report)
    assert "100.00 -> 117.00 (+17.00, +17.00 %)" in lines[0]
    assert "30.00 (25.00 %)" in lines[2] and lines[4].endswith("1 Canceled, 4 Completed")


def test_without_matplotlib_the_files_are_written_without_the_picture(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    rec = recorder([100.0, 101.0])
    files = write_report(tmp_path, build_report(rec), rec)
    assert sorted(f.name for f in files) == ["equity.csv", "report.json", "trades.csv"]
    assert not (tmp_path / "equity.png").exists()


def test_demo_report_files_hold_the_runs_numbers(tmp_path, capsys):
    folder = tmp_path / "report"
    assert main(["demo", "--bars", "30", "--speed", "3000", "--seed", "1", "--report", str(folder)]) == 0
    out = capsys.readouterr().out
    done = re.search(r"^done +30 live bars, (\d+) orders filled, (\d+) trades closed, final value ([\d,.]+)", out, re.M)
    assert done, out
    filled, closed, final = int(done.group(1)), int(done.group(2)), float(done.group(3).replace(",", ""))
    assert closed >= 1  # seed 1 trades within 30 bars: the files below have a trade to hold

    report = json.loads((folder / "report.json").read_text())
    assert report["final_value"] == pytest.approx(final, abs=0.005)
    assert report["orders"].get("Completed", 0) == filled
    assert report["trades_closed"] == closed and report["starting_value"] == 10_000
    assert re.search(rf"^report  trades +{closed} closed", out, re.M)
    assert f"{report['final_value']:,.2f}" in re.search(r"^report  value .*$", out, re.M).group(0)

    with (folder / "trades.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == closed and all(row["symbol"] == "BTC/USDT" for row in rows)
    assert sum(float(r["pnl_after_fees"]) for r in rows) == pytest.approx(report["trades_pnl_after_fees"])
    assert sum(float(r["pnl_after_fees"]) for r in rows) == pytest.approx(report["pnl"])  # flat at the end
    assert report["fees"] == pytest.approx(sum(float(r["fees"]) for r in rows))
    with (folder / "equity.csv").open() as handle:
        equity = list(csv.DictReader(handle))
    assert float(equity[-1]["value"]) == pytest.approx(report["final_value"])
    assert (folder / "equity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
