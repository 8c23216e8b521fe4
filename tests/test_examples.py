"""The examples and the demo run as a user would run them, and show what they promise."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from datetime import datetime, timedelta
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
    # The example reads mainnet by default; the test gives it the emulator instead (no network).
    out = run("examples/paper_trading.py", "binance", "--venue", "emulator", "--bars", "70")
    assert "data BTC/USDT: LIVE" in out
    assert re.search(r"^BUY  \+0\.0100 @ [\d.]+ fee [\d.]+$", out, re.M)
    assert out.index("data BTC/USDT: LIVE") < out.index("BUY ")  # history bars never trade
    assert re.search(r"^final value: \d+\.\d\d$", out, re.M)


def test_paper_trading_example_reads_mainnet_unless_told_otherwise():
    spec = importlib.util.spec_from_file_location("paper_trading_example", ROOT / "examples" / "paper_trading.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.parser().parse_args([]).venue == "mainnet"
    assert module.parser().parse_args(["bybit", "--venue", "emulator"]).venue == "emulator"


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_two_symbols_example_trades_both_markets_in_one_cerebro(exchange):
    out = run("examples/two_symbols.py", exchange)
    for symbol in ("BTC/USDT", "ETH/USDT"):
        assert f"data   {symbol}: LIVE" in out
        assert re.search(rf"^order  {symbol} BUY  \d+\.\d{{4}} @ [\d.]+$", out, re.M), out
        assert re.search(rf"^order  {symbol} SELL \d+\.\d{{4}} @ [\d.]+$", out, re.M), out
        assert re.search(rf"^trade  {symbol} closed, pnl after fees [+-]\d+\.\d{{4}}$", out, re.M), out
    # the two markets trade at their own prices: BTC above 10,000, ETH below
    btc = float(re.search(r"^order  BTC/USDT BUY  [\d.]+ @ ([\d.]+)$", out, re.M).group(1))
    eth = float(re.search(r"^order  ETH/USDT BUY  [\d.]+ @ ([\d.]+)$", out, re.M).group(1))
    assert btc > 10_000 > eth
    assert re.search(r"^final  value \d+\.\d\d USDT$", out, re.M)


BAR_LINE = re.compile(
    r"^(1m|5m) +(\S+ \S+) (live|history) +O ([\d.]+) H ([\d.]+) L ([\d.]+) C ([\d.]+) V ([\d.]+)$", re.M
)


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_live_resample_example_builds_5m_bars_from_live_1m_bars(exchange):
    out = run("examples/live_resample.py", exchange, "--bars", "3")
    lines = BAR_LINE.findall(out)
    ones = {stamp: tuple(map(float, rest)) for kind, stamp, _, *rest in lines if kind == "1m"}
    fives = [(stamp, state, tuple(map(float, rest))) for kind, stamp, state, *rest in lines if kind == "5m"]
    assert sum(state == "live" for _, state, _ in fives) == 3, out
    for stamp, _, (o, h, low, c, v) in fives:
        end = datetime.strptime(stamp, "%Y-%m-%d %H:%M")
        assert end.minute % 5 == 0  # stamped at the 5m candle's close
        start = end - timedelta(minutes=5)
        period = [ones[s] for s in sorted(ones) if start < datetime.strptime(s, "%Y-%m-%d %H:%M") <= end]
        assert period, (stamp, out)
        # the 5m bar is the 1m bars of its period, aggregated
        assert o == period[0][0] and c == period[-1][3]
        assert h == max(p[1] for p in period) and low == min(p[2] for p in period)
        assert v == pytest.approx(sum(p[4] for p in period), abs=1e-5)
    # each 5m bar arrives with the 1m bar that completes it, not a period later
    order = [(kind, stamp) for kind, stamp, *_ in lines]
    for i, (kind, stamp) in enumerate(order):
        if kind == "5m":
            assert order[i - 1] == ("1m", stamp), order[i - 1 : i + 1]


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
