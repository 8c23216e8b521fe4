"""The examples and the demo run as a user would run them, and show what they promise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, timeout: float = 120) -> str:
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_live_bars_example_prints_history_then_live_bars(exchange):
    out = run("examples/live_bars.py", exchange)
    assert "BTC/USDT: LIVE" in out
    assert len(re.findall(r" history +O ", out)) == 8 - 4  # the 5-bar average warms up on 4 of them
    assert len(re.findall(r" live +O ", out)) == 10


def test_paper_trading_example_trades_and_reports_value():
    out = run("examples/paper_trading.py")
    assert re.search(r"^BUY  \+0\.0100 @ [\d.]+ fee [\d.]+$", out, re.M)
    assert re.search(r"^final value: \d+\.\d\d$", out, re.M)


def test_demo_command_paper_trades_live_bars_from_the_emulator():
    out = run("-m", "realtrade_core.cli", "demo", "--bars", "20")
    assert "data    BTC/USDT: LIVE" in out
    done = re.search(r"^done +(\d+) live bars, (\d+) orders filled", out, re.M)
    assert done and int(done.group(1)) == 20


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_live_emulator_example_runs(exchange):
    out = run("examples/live_emulator.py", exchange, "--bars", "8", timeout=120)
    assert "data   LIVE" in out
    bought = re.search(r"^order  BUY  Market Completed (0\.01000) @ [\d,]+\.\d\d fee (\d+\.\d{4}) USDT$", out, re.M)
    sold = re.search(r"^order  SELL Market Completed (0\.00999) @ [\d,]+\.\d\d fee (\d+\.\d{4}) USDT$", out, re.M)
    assert bought and sold, out  # the close sells what the buy left after its fee in BTC
    assert float(bought.group(2)) > 0 and float(sold.group(2)) > 0
    assert re.search(r"^trade  closed: pnl [+-]\d+\.\d{4}, after fees [+-]\d+\.\d{4} USDT$", out, re.M)
    assert re.search(r"^order  BUY  Limit Canceled$", out, re.M)
    # the bracket: its entry, then one exit filled and the other cancelled
    assert re.search(r"^order  BUY  Market Completed 0\.01000 @", out[bought.end():], re.M), out
    exits = re.findall(r"^order  SELL (Limit|Stop) (Completed|Canceled)", out, re.M)
    one_each = ([("Limit", "Canceled"), ("Stop", "Completed")], [("Limit", "Completed"), ("Stop", "Canceled")])
    assert sorted(exits) in one_each, out
    assert re.search(r"^final  cash [\d,]+\.\d\d USDT, value [\d,]+\.\d\d USDT$", out, re.M)
