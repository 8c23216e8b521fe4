"""``realtrade fetch`` and ``realtrade check`` against an emulator on 127.0.0.1."""

from __future__ import annotations

import csv
import os
import pty
import re
import select
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import backtrader as bt
import pytest

from realtrade_core.check import FAIL, OK, WARN, _check_keys, skew_status
from realtrade_core.cli import main
from realtrade_core.emulator.replay import load_candles_csv
from realtrade_core.emulator.server import Emulator

MINUTE = 60_000
START = int(datetime(2024, 3, 1, tzinfo=timezone.utc).timestamp() * 1000)
HOLE = range(1500, 1510)  # candles the exchange does not have (an outage)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """2,400 one-minute candles with a 10-minute hole, replayed by the emulator."""
    path = tmp_path_factory.mktemp("source") / "btc.csv"
    rows = ["timestamp,open,high,low,close,volume"]
    price = 60_000.0
    for i in range(2_400):
        if i in HOLE:
            continue
        close = price + ((i * 37) % 11 - 5)
        rows.append(f"{START + i * MINUTE},{price},{max(price, close) + 2},{min(price, close) - 2},{close},{1 + i % 7}")
        price = close
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def emulator(source):
    # A manual clock (speed=None): 2,300 candles have closed and the market stands still.
    with Emulator("binance", symbols=("BTC/USDT",), data=str(source), history=2_300, speed=None) as emu:
        yield emu


def fetch(emulator, out: Path, *extra: str) -> int:
    where = ["--exchange", "binance", "--venue", "emulator", "--emulator-url", emulator.base_http]
    return main(
        ["fetch", *where, "--symbol", "BTC/USDT", "--timeframe", "1m", "--since", "2024-03-01", "-o", str(out), *extra]
    )


def test_fetch_pages_history_to_csv_reports_the_gap_and_resumes(emulator, source, tmp_path, capsys):
    out = tmp_path / "btc-1m.csv"
    assert fetch(emulator, out, "--quiet") == 0
    said = capsys.readouterr().out
    closed = 2_300  # every closed candle the exchange has (history counts the file's rows), three pages
    assert f"{closed} candles of BTC/USDT 1m from binance emulator, 2024-03-01 00:00:00 to " in said
    assert "gap     2024-03-02 01:00:00 to 2024-03-02 01:09:00: 10 candle(s) the exchange does not have" in said
    whole = out.read_text()

    # The same candles as the exchange's file, in the format the emulator replays.
    fetched = load_candles_csv(out)
    original = load_candles_csv(source)[:closed]
    assert [(c.open_time, c.close) for c in fetched] == [(c.open_time, c.close) for c in original]

    # Resumable: cut the file short and run again; it continues from its last candle.
    lines = whole.splitlines(keepends=True)
    out.write_text("".join(lines[:-700]))
    assert fetch(emulator, out) == 0
    assert "continued after" in capsys.readouterr().out
    assert out.read_text() == whole
    assert fetch(emulator, out) == 0
    assert "up to date, no new closed candle" in capsys.readouterr().out


def test_fetch_progress_without_a_terminal_is_one_line_on_stderr(emulator, tmp_path, capsys):
    # A log, CI or cron: click prints the bar's label once and never redraws it.
    assert fetch(emulator, tmp_path / "btc.csv", "--until", "2024-03-01T09:59") == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == ["BTC/USDT 1m: 600 candles, 2024-03-01 00:00:00 to 2024-03-01 09:59:00 (UTC)"]
    assert "600 candles of BTC/USDT 1m from binance emulator" in captured.out  # the summary, on stdout


def test_fetch_progress_on_a_terminal_shows_count_percent_and_rate(emulator, tmp_path):
    """On a terminal the bar redraws in place: candles done/total, percent and candles per second."""
    primary, secondary = pty.openpty()
    command = [sys.executable, "-m", "realtrade_core.cli", "fetch", "--exchange", "binance", "--venue", "emulator",
               "--emulator-url", emulator.base_http, "--symbol", "BTC/USDT", "--since", "2024-03-01",
               "--until", "2024-03-01T23:59", "-o", str(tmp_path / "btc.csv")]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=secondary, text=True)
    os.close(secondary)
    shown = b""
    try:
        while True:  # until the child closes the terminal; each wait is bounded
            ready, _, _ = select.select([primary], [], [], 60)
            assert ready, f"no progress output within 60 s: {shown!r}"
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the child has exited and closed its side
                break
            if not chunk:
                break
            shown += chunk
        out, _ = proc.communicate(timeout=60)
    finally:
        os.close(primary)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, shown
    text = shown.decode()
    assert "\r" in text  # redrawn in place
    final = text.replace("\r\n", "\n").split("\r")[-1]
    assert re.search(r"BTC/USDT 1m: 1,440 candles, .*\[#+\] +1440/1440 +100% +[\d,]+ candles/s", final), final
    assert "1440 candles of BTC/USDT 1m" in out


def test_fetched_file_loads_into_generic_csv_data(emulator, tmp_path):
    out = tmp_path / "btc.csv"
    assert fetch(emulator, out, "--until", "2024-03-01T00:09", "--quiet") == 0
    cerebro = bt.Cerebro()
    cerebro.adddata(bt.feeds.GenericCSVData(dataname=str(out), openinterest=-1, timeframe=bt.TimeFrame.Minutes))
    closes: list[float] = []

    class Record(bt.Strategy):
        def next(self):
            closes.append(self.data.close[0])

    cerebro.addstrategy(Record)
    cerebro.run()
    with out.open() as handle:
        expected = [float(row["close"]) for row in csv.DictReader(handle)]
    assert len(closes) == 10 and closes == expected


def test_a_fetched_file_is_what_the_emulator_replays(emulator, tmp_path):
    """`realtrade emulator --data FILE` serves a fetched file (the option hands the path to the
    emulator): fetching from that emulator gives the same file back."""
    first = tmp_path / "first.csv"
    assert fetch(emulator, first, "--until", "2024-03-01T16:39", "--quiet") == 0  # 1,000 candles
    with Emulator("binance", symbols=("BTC/USDT",), data=str(first), history=999, speed=None) as replay:
        again = tmp_path / "again.csv"
        assert fetch(replay, again, "--quiet") == 0
    lines = first.read_text().splitlines()
    assert len(lines) == 1 + 1_000
    # the replaying emulator has closed all but its last candle, which is still forming
    assert again.read_text().splitlines() == lines[:-1]


def test_fetch_refuses_bad_input(emulator, tmp_path, capsys):
    assert main(["fetch", "--exchange", "binance", "--symbol", "BTC/USDT", "--since", "yesterday", "-o", "x.csv"]) == 1
    assert "--since 'yesterday' is not a date" in capsys.readouterr().err
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    assert fetch(emulator, other) == 1
    assert "is not a candle file of realtrade fetch" in capsys.readouterr().err


def test_check_passes_against_the_emulator_with_its_keys(emulator, monkeypatch, capsys):
    monkeypatch.setenv("REALTRADE_BINANCE_API_KEY", emulator.api_key)
    monkeypatch.setenv("REALTRADE_BINANCE_SECRET", emulator.secret)
    args = ["check", "--exchange", "binance", "--venue", "emulator", "--emulator-url", emulator.base_http]
    assert main([*args, "--symbol", "BTC/USDT"]) == 0
    out = capsys.readouterr().out
    for check in ("plugin", "connect", "latency", "clock", "keys", "market BTC/USDT"):
        assert any(line.startswith(check) for line in out.splitlines()), (check, out)
    assert "accepted; holds BTC, USDT" in out and "withdrawals too" in out  # the emulator's key may withdraw
    assert "trading, last price" in out

    assert main([*args, "--symbol", "BTC/USDX"]) == 1
    out = capsys.readouterr().out
    assert "market BTC/USDX  FAIL" in out and "has no market 'BTC/USDX'" in out

    monkeypatch.setenv("REALTRADE_BINANCE_SECRET", "not-the-secret-0123456789")
    assert main(args) == 1
    captured = capsys.readouterr()
    # Loading Binance's markets already signs a request: the refusal shows at connect.
    assert "FAIL" in captured.out and "the API key was refused" in captured.out
    assert "failed: " in captured.err and "not-the-secret" not in captured.out + captured.err


def test_check_against_the_bybit_emulator(monkeypatch, capsys):
    with Emulator("bybit", symbols=("BTC/USDT", "ETH/USDT"), history=50, speed=None) as emu:
        monkeypatch.setenv("REALTRADE_BYBIT_API_KEY", emu.api_key)
        monkeypatch.setenv("REALTRADE_BYBIT_SECRET", emu.secret)
        args = ["check", "--exchange", "bybit", "--venue", "emulator", "--emulator-url", emu.base_http]
        assert main([*args, "--symbol", "BTC/USDT", "--symbol", "ETH/USDT"]) == 0
        out = capsys.readouterr().out
        rows = {line.split("  ")[0]: line for line in out.splitlines()[2:]}
        assert set(rows) == {"plugin", "connect", "latency", "clock", "keys", "market BTC/USDT", "market ETH/USDT"}, out
        assert all(" OK " in row for row in rows.values()), out
        assert re.search(r"^connect +OK +2 markets loaded in \d+ ms$", out, re.M), out
        assert re.search(r"^latency +OK +median \d+ ms over 3 requests$", out, re.M), out
        assert re.search(r"^clock +OK +[+-]\d+ ms from the emulator's clock$", out, re.M), out
        assert "accepted; holds BTC, ETH, USDT" in rows["keys"]
        assert "trading allowed, withdrawals not" in rows["keys"]  # from /v5/user/query-api
        assert re.search(r"^market ETH/USDT +OK +trading, last price [\d.]+, minimum order \d", out, re.M), out

        assert main([*args, "--symbol", "ETH/USDX"]) == 1  # a market the venue does not list
        captured = capsys.readouterr()
        assert re.search(r"has no market 'ETH/USDX'\. Did you mean '?ETH/USDT'?\?", captured.out), captured.out
        assert "failed: market ETH/USDX" in captured.err

        monkeypatch.setenv("REALTRADE_BYBIT_SECRET", "not-the-secret-0123456789")
        assert main(args) == 1  # a refused key
        captured = capsys.readouterr()
        assert "the API key was refused" in captured.out and "not-the-secret" not in captured.out + captured.err

        monkeypatch.delenv("REALTRADE_BYBIT_API_KEY")
        monkeypatch.delenv("REALTRADE_BYBIT_SECRET")
        assert main(args) == 0  # no key: public data only, nothing failed
        assert re.search(r"^keys +SKIP +no API key given", capsys.readouterr().out, re.M)


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_check_fails_when_the_venue_cannot_be_reached(exchange, capsys):
    with Emulator(exchange, symbols=("BTC/USDT",), history=50, speed=None) as emu:
        url = emu.base_http
    # the emulator has stopped: nothing listens at its address any more
    assert main(["check", "--exchange", exchange, "--venue", "emulator", "--emulator-url", url]) == 1
    captured = capsys.readouterr()
    assert re.search(r"^connect +FAIL +cannot reach the emulator at http://127\.0\.0\.1", captured.out, re.M)
    assert "latency" not in captured.out  # nothing after an unreachable venue is tried
    assert "failed: connect" in captured.err


class _KeyStore:
    """A stand-in store for the permission rows (unit test: no exchange involved)."""

    credentials = ("key", "secret")

    def __init__(self, permissions=None, info=None):
        self.permissions, self.info = permissions, info or {}
        self.client = self

    def fetch_balance(self):
        return {"info": self.info, "total": {"USDT": 5.0}}

    def _call(self, func, *args):
        return func(*args)


@pytest.mark.parametrize(
    ("store", "status", "says"),
    [
        (_KeyStore(info={"canTrade": True, "canWithdraw": False}), OK, "trading allowed, withdrawals not"),
        (_KeyStore(info={"canTrade": True, "canWithdraw": True}), WARN, "a trading key should not withdraw"),
        (_KeyStore(info={"canTrade": False}), FAIL, "this key may not trade"),
        (_KeyStore(info={}), OK, "does not report the key's permissions"),
        # a plugin's key_permissions() wins over the balance's account record
        (type("S", (_KeyStore,), {"key_permissions": lambda self: {"trade": False, "withdraw": False}})(
            info={"canTrade": True}), FAIL, "this key may not trade"),
    ],
)  # fmt: skip
def test_key_permission_rows(store, status, says):
    row = _check_keys(store)
    assert row.status == status and says in row.detail and "holds USDT" in row.detail


def test_clock_skew_limits():
    assert skew_status(200, "mainnet") == OK
    assert skew_status(-1_500, "testnet") == WARN
    assert skew_status(6_000, "mainnet") == FAIL
    assert skew_status(3_600_000, "emulator") == OK  # an emulator replaying the past is no fault


@pytest.mark.parametrize(
    "record, expected",
    [
        ({"readOnly": 0, "permissions": {"Spot": ["SpotTrade"], "Wallet": ["AccountTransfer"]}},
         {"trade": True, "withdraw": False}),
        ({"readOnly": 0, "permissions": {"Spot": ["SpotTrade"], "Wallet": ["Withdraw"]}},
         {"trade": True, "withdraw": True}),
        ({"readOnly": 1, "permissions": {"Spot": ["SpotTrade"], "Wallet": ["Withdraw"]}},
         {"trade": False, "withdraw": False}),
        ({"readOnly": 0, "permissions": {"Spot": []}}, {"trade": False, "withdraw": False}),
        ({}, {"trade": None, "withdraw": None}),
    ],
)
def test_bybit_key_permissions_come_from_its_key_record(record, expected):
    from types import SimpleNamespace

    from realtrade_bybit.store import BybitStore

    fake = SimpleNamespace(_call=lambda func: func(),
                           client=SimpleNamespace(privateGetV5UserQueryApi=lambda: {"result": record}))  # fmt: skip
    assert BybitStore.key_permissions(fake) == expected


def test_fetch_downloads_a_perpetual_contracts_candles(source, tmp_path, capsys):
    with Emulator("bybit", symbols=("BTC/USDT:USDT",), data={"BTC/USDT:USDT": str(source)}, history=200,
                  speed=None) as emu:  # fmt: skip
        out = tmp_path / "btc-perp-1m.csv"
        where = ["--exchange", "bybit", "--venue", "emulator", "--emulator-url", emu.base_http, "--market", "perpetual"]
        args = ["--symbol", "BTC/USDT:USDT", "--timeframe", "1m", "--since", "2024-03-01", "-o", str(out), "--quiet"]
        assert main(["fetch", *where, *args]) == 0
    said = capsys.readouterr().out
    assert "200 candles of BTC/USDT:USDT 1m from bybit emulator" in said
    fetched = load_candles_csv(out)
    assert [(c.open_time, c.close) for c in fetched] == [(c.open_time, c.close) for c in load_candles_csv(source)[:200]]


def test_fetch_refuses_a_contract_symbol_without_market_perpetual(emulator, tmp_path, capsys):
    where = ["--exchange", "binance", "--venue", "emulator", "--emulator-url", emulator.base_http]
    args = ["--symbol", "BTC/USDT:USDT", "--since", "2024-03-01", "-o", str(tmp_path / "x.csv"), "--quiet"]
    assert main(["fetch", *where, *args]) != 0
    err = capsys.readouterr().err
    assert "is a perpetual contract" in err and "market_type='perpetual'" in err and "Traceback" not in err
