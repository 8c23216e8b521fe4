"""The benchmark command runs from a checkout and prints every row of its table (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ROWS = (
    "binance: live bars/s, 1 symbol",
    "binance: live bars/s, 16 symbols",
    "bybit: live bars/s, 1 symbol",
    "bybit: live bars/s, 16 symbols",
    "binance: close -> next(), 1 symbol",
    "bybit: close -> next(), 1 symbol",
    "binance: first live bar after 200 bars of history",
    "bybit: first live bar after 200 bars of history",
    "WebSocket ingest to typed bars",
    "binance: market order round trip",
    "bybit: market order round trip",
    "binance: the same with 20 resting limit orders",
    "bybit: the same with 20 resting limit orders",
    "cold: import realtrade_core",
    "cold: realtrade exchanges",
    "cold: realtrade exchanges, first after an install",
    "binance: history fetch",
    "bybit: history fetch",
    "binance: RSS at the first live bar",
    "RSS after 20,000 WebSocket messages",
)


def test_python_m_bench_quick_prints_every_row_beside_its_baseline():
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("python -m bench --quick: ") and "CPUs" in lines[0]
    header = lines[1]
    assert "realtrade" in header and "ceiling / baseline (same run)" in header and "goal" in header
    for row in ROWS:
        matching = [line for line in lines if line.startswith(row)]
        assert matching, f"no row {row!r} in:\n{done.stdout}"
        # every row has a figure of its own and one measured for its baseline
        assert any(ch.isdigit() for ch in matching[0][len(row) :]), matching[0]
