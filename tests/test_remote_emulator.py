"""`realtrade emulator` started as a user would, and a store talking to it by URL."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from itertools import pairwise

import backtrader as bt
import pytest
from livetest import Recorder

from realtrade_core.store import get_store


@contextmanager
def serving(exchange: str, *options: str):
    """``realtrade emulator --exchange <exchange> --port 0 <options>`` until the block ends:
    yields its URL, API key and secret as it prints them."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtrade_core.cli", "emulator", "--exchange", exchange, "--port", "0", *options],
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
    yield url.group(1), key.group(1), secret.group(1)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0


@pytest.fixture(params=["binance", "bybit"])
def served(request):
    with serving(request.param, "--history", "300") as (url, key, secret):
        yield request.param, url, key, secret


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


class _FiveLiveBars(bt.Strategy):
    def __init__(self) -> None:
        self.states: list[str] = []
        self.live_bars = 0

    def notify_data(self, data, status, *args, **kwargs) -> None:
        self.states.append(data._getstatusname(status))

    def next(self) -> None:
        if "LIVE" in self.states:
            self.live_bars += 1
            if self.live_bars == 5:
                self.env.runstop()


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_a_perpetual_streams_live_bars_from_a_served_emulator(exchange):
    """A served emulator's USDT perpetual by URL: the store finds the futures API's streams
    (Binance's fstream, Bybit's linear topics) among the paths the plugin declares."""
    with serving(exchange, "--history", "300", "--symbol", "BTC/USDT:USDT", "--speed", "600") as (url, _, _):
        store = get_store(exchange, "emulator", emulator_url=url, market_type="perpetual")
        cerebro = bt.Cerebro()
        cerebro.adddata(store.getdata(dataname="BTC/USDT:USDT", timeframe="1m", backfill_bars=3))
        cerebro.addstrategy(_FiveLiveBars)
        (strategy,) = cerebro.run()
        assert strategy.live_bars == 5, strategy.states
