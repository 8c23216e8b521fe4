"""`realtrade emulator` started as a user would, and a store talking to it by URL."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from itertools import pairwise

import backtrader as bt
import pytest
from livetest import Recorder

from realtrade_core.store import get_store


@pytest.fixture(params=["binance", "bybit"])
def served(request):
    exchange = request.param
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "realtrade_core.cli",
            "emulator",
            "--exchange",
            exchange,
            "--port",
            "0",
            "--history",
            "300",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(line.startswith("Press Ctrl+C") for line in lines):
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.strip())
    text = "\n".join(lines)
    url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", text)
    key = re.search(r"api key: +(\S+)", text)
    secret = re.search(r"secret: +(\S+)", text)
    assert url and key and secret, f"unexpected output: {text}\n{proc.stderr.read() if proc.poll() else ''}"
    yield exchange, url.group(1), key.group(1), secret.group(1)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0


def test_a_store_trades_against_a_served_emulator_by_url(served):
    exchange, url, key, secret = served
    store = get_store(exchange, "emulator", emulator_url=url, api_key=key, secret=secret)
    try:
        store.start()
        balance = store.client.fetch_balance()
        assert balance["USDT"]["free"] == pytest.approx(100_000)
        order = store.client.create_order("BTC/USDT", "market", "buy", 0.01)
        assert store.client.fetch_order(
            order["id"], "BTC/USDT", params={"acknowledged": True} if exchange == "bybit" else {}
        )["filled"] == pytest.approx(0.01)

        now = datetime.fromtimestamp(store.server_time() / 1000, tz=timezone.utc).replace(tzinfo=None)
        cerebro = bt.Cerebro()
        cerebro.adddata(
            store.getdata(
                dataname="BTC/USDT", timeframe="1m", historical=True, fromdate=now - timedelta(minutes=30), todate=now
            )
        )
        cerebro.addstrategy(Recorder)
        (strategy,) = cerebro.run()
        rows = strategy.rows["BTC/USDT"]
        assert 28 <= len(rows) <= 30
        assert all(b[0] - a[0] == 60_000 for a, b in pairwise(rows))
    finally:
        store.stop()
