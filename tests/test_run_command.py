"""``realtrade run``: a strategy file on the emulator, paper and live, its parameters and
config file, the checks made before anything starts, a strategy that raises, and Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from realtrade_core.cli import main

STRATEGY = textwrap.dedent(
    """
    import backtrader as bt


    class HoldStrategy(bt.Strategy):
        '''Buys on the first live bar and sells after holding `hold` bars.'''

        params = (("hold", 2), ("size", 0.01), ("label", "x"), ("fail", False))

        def __init__(self):
            self.live = False
            self.entered = None
            self.order = None  # the order not yet done: wait for it, as backtrader's samples do

        def notify_data(self, data, status, *args, **kwargs):
            self.live = data._getstatusname(status) == "LIVE"
            print("data", data._name, data._getstatusname(status), flush=True)

        def notify_order(self, order):
            if order.status == order.Completed:
                print("order", order.data._name, "Completed", flush=True)
            if not order.alive():
                self.order = None

        def next(self):
            if not self.live:
                return
            if self.p.fail:
                raise ZeroDivisionError("the strategy's own bug")
            if self.order is not None:
                return
            if not self.position and self.entered is None:
                self.order = self.buy(size=self.p.size)
                self.entered = len(self)
            elif self.position and len(self) - self.entered >= self.p.hold:
                self.order = self.close()


    class ShortThenCover(bt.Strategy):
        '''Sells short on the first live bar and buys back after holding `hold` bars; with
        `stop_short`, ends the run once the short is filled.'''

        params = (("hold", 1), ("stop_short", 0))

        def __init__(self):
            self.live, self.entered, self.order = False, None, None

        def notify_data(self, data, status, *args, **kwargs):
            self.live = data._getstatusname(status) == "LIVE"

        def notify_order(self, order):
            if order.status == order.Completed:
                side = "sell" if order.issell() else "buy"
                print("order", order.data._name, side, order.executed.size, "position", self.position.size, flush=True)
                if self.p.stop_short and self.position.size < 0:
                    self.env.runstop()
            if not order.alive():
                self.order = None

        def next(self):
            if not self.live or self.order is not None:
                return
            if not self.position and self.entered is None:
                self.order = self.sell(size=0.01)
                self.entered = len(self)
            elif self.position and len(self) - self.entered >= self.p.hold:
                self.order = self.close()


    class Other(bt.Strategy):
        pass
    """
)


@pytest.fixture
def strategy_file(tmp_path: Path) -> Path:
    path = tmp_path / "hold.py"
    path.write_text(STRATEGY)
    return path


FAST = ["--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1m", "--speed", "3000", "--backfill-bars", "5"]


@pytest.mark.parametrize("mode", ["--paper", "--live"])
def test_run_trades_the_strategy_file_and_reports_it(strategy_file, tmp_path, capsys, mode):
    folder = tmp_path / "report"
    code = main(["run", f"{strategy_file}:HoldStrategy", *FAST, mode, "--bars", "8", "--param", "hold=1",
                 "--cash", "5000", "--report", str(folder)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    kind = mode.strip("-")
    assert f"realtrade run: HoldStrategy on binance emulator, BTC/USDT 1m, {kind} cash 5,000.00" in out
    assert "data BTC/USDT LIVE" in out
    report = json.loads((folder / "report.json").read_text())
    assert report["mode"] == kind and report["params"] == {"hold": 1} and report["symbols"] == ["BTC/USDT"]
    assert report["orders"] == {"Completed": 2}
    assert report["trades_closed"] == 1 and report["fees"] > 0
    assert re.search(r"^report  trades +1 closed", out, re.M) and re.search(r"^done +in [\d.]+ s$", out, re.M)


@pytest.mark.parametrize("mode", ["--paper", "--live"])
@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_run_trades_a_perpetual_contract_short_with_leverage(strategy_file, tmp_path, capsys, exchange, mode):
    folder = tmp_path / "report"
    code = main(["run", f"{strategy_file}:ShortThenCover", "--exchange", exchange, "--symbol", "BTC/USDT:USDT",
                 "--market", "perpetual", "--leverage", "3", "--timeframe", "1m", "--speed", "600", mode,
                 "--journal", str(tmp_path / "journal.sqlite3"), "--backfill-bars", "5", "--bars", "10",
                 "--report", str(folder)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"ShortThenCover on {exchange} emulator, BTC/USDT:USDT perpetual at 3x 1m, {mode.strip('-')}" in out
    assert "order BTC/USDT:USDT sell -0.01 position -0.01" in out  # a short, not a refused spot sell
    assert "order BTC/USDT:USDT buy 0.01 position 0.0" in out
    report = json.loads((folder / "report.json").read_text())
    assert report["symbols"] == ["BTC/USDT:USDT"] and report["orders"] == {"Completed": 2}
    assert report["trades_closed"] == 1


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_a_live_perpetual_run_that_ends_short_reports_its_value(strategy_file, tmp_path, capsys, exchange):
    """The run ends with the short still open: the ledger's value (its unrealised profit) is
    read after the store has stopped, by backtrader and by the report. The strategy ends the run
    once its short is filled: a bar limit could end it first when a loaded machine hands cerebro
    the live bars in a burst, before the exchange has answered."""
    code = main(["run", f"{strategy_file}:ShortThenCover", "--exchange", exchange, "--symbol", "BTC/USDT:USDT",
                 "--market", "perpetual", "--timeframe", "1m", "--speed", "600", "--live", "--param", "hold=1000",
                 "--param", "stop_short=1", "--journal", str(tmp_path / "journal.sqlite3"), "--backfill-bars", "5",
                 "--bars", "200"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    assert "order BTC/USDT:USDT sell -0.01 position -0.01" in captured.out, captured.out
    assert re.search(r"^report  value +[\d,.]+ -> [\d,.]+", captured.out, re.M), captured.out


def test_run_reads_a_config_file_and_the_command_line_wins(strategy_file, tmp_path, capsys):
    config = tmp_path / "realtrade.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            strategy = "{strategy_file}:HoldStrategy"
            exchange = "bybit"
            symbols = ["ETH/USDT", "BTC/USDT"]
            timeframe = "1m"
            cash = 2000
            backfill_bars = 5
            bars = 5

            [params]
            hold = 3
            label = "from-file"

            [emulator]
            speed = 3000
            """
        )
    )
    assert main(["run", "--config", str(config), "--param", "hold=1"]) == 0
    out = capsys.readouterr().out
    assert "HoldStrategy on bybit emulator, ETH/USDT, BTC/USDT 1m, paper cash 2,000.00" in out
    assert "data ETH/USDT LIVE" in out and "data BTC/USDT LIVE" in out  # one data per symbol
    assert "params {'hold': 1, 'label': 'from-file'}" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "hodl=1"], "HoldStrategy has no parameter 'hodl'. Did you mean 'hold'?"),
        (["--param", "hold=soon"], "strategy parameter hold must be int like its default 2, got 'soon'"),
        (["--param", "hold"], "--param 'hold': give NAME=VALUE"),
        (["--cash", "-1"], "--cash: cash must be more than 0, got -1.0"),
        (["--timeframe", "7m"], "binance has no 7m candles"),
        (["--symbol", "BTC/USDX"], "has no market 'BTC/USDX'. Did you mean 'BTC/USDT'?"),
        (["--live", "--venue", "testnet"], "live trading needs an API key and secret of your testnet account"),
        (["--exchange", "binanse"], "Did you mean 'binance'?"),
        (
            ["--market", "perpetual"],
            "'BTC/USDT' is a spot symbol; with --market perpetual write the contract as BTC/USDT:USDT",
        ),
        (["--symbol", "ETH/USDT:USDT"], "'ETH/USDT:USDT' is a perpetual contract: add --market perpetual"),
        (["--leverage", "2"], "--leverage applies to perpetual contracts: add --market perpetual"),
    ],
)
def test_run_refuses_bad_input_with_one_line_and_no_traceback(strategy_file, capsys, args, message):
    target = f"{strategy_file}:HoldStrategy"
    assert main(["run", target, "--exchange", "binance", "--symbol", "BTC/USDT", *args]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


def test_run_names_the_strategy_to_choose(strategy_file, capsys):
    assert main(["run", str(strategy_file), "--exchange", "binance", "--symbol", "BTC/USDT"]) == 1
    err = capsys.readouterr().err
    assert "defines several strategies (HoldStrategy, ShortThenCover, Other); choose one with" in err
    assert main(["run", f"{strategy_file}:HoldStrat", "--exchange", "binance", "--symbol", "BTC/USDT"]) == 1
    assert "has no strategy class 'HoldStrat'. Did you mean 'HoldStrategy'?" in capsys.readouterr().err
    assert main(["run", "missing.py", "--exchange", "binance", "--symbol", "BTC/USDT"]) == 1
    assert "strategy file 'missing.py' does not exist" in capsys.readouterr().err
    assert main(["run", "--exchange", "binance"]) == 2
    assert "give the strategy file" in capsys.readouterr().err


def test_a_strategy_that_raises_exits_3_with_its_traceback(strategy_file, capsys):
    code = main(["run", f"{strategy_file}:HoldStrategy", *FAST, "--param", "fail=true", "--bars", "3"])
    err = capsys.readouterr().err
    assert code == 3
    assert "ZeroDivisionError: the strategy's own bug" in err and "hold.py" in err  # the user's own traceback


def test_ctrl_c_stops_cleanly_prints_the_report_and_exits_130(strategy_file):
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtrade_core.cli", "run", f"{strategy_file}:HoldStrategy",
         "--exchange", "binance", "--symbol", "BTC/USDT", "--speed", "60", "--backfill-bars", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        for line in proc.stdout:  # bounded by the timeout of communicate() below if LIVE never comes
            if "BTC/USDT LIVE" in line:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted (Ctrl-C): stopping" in err and "Traceback" not in err
    assert re.search(r"^report  value +[\d,.]+ -> [\d,.]+", out, re.M) and "(interrupted)" in out


def test_run_takes_several_symbols_on_the_command_line(strategy_file, capsys):
    fast = [a for a in FAST if a not in ("--symbol", "BTC/USDT")]
    code = main(["run", f"{strategy_file}:HoldStrategy", *fast, "--symbol", "BTC/USDT", "--symbol", "ETH/USDT",
                 "--bars", "12", "--param", "size=0.001"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "HoldStrategy on binance emulator, BTC/USDT, ETH/USDT 1m, paper" in out
    assert "data BTC/USDT LIVE" in out and "data ETH/USDT LIVE" in out


def test_live_on_mainnet_needs_the_opt_in_and_sends_nothing_without_it(strategy_file, monkeypatch, capsys):
    monkeypatch.setenv("REALTRADE_BINANCE_API_KEY", "k" * 64)
    monkeypatch.setenv("REALTRADE_BINANCE_SECRET", "s" * 64)
    args = ["run", f"{strategy_file}:HoldStrategy", "--exchange", "binance", "--symbol", "BTC/USDT"]
    assert main([*args, "--venue", "mainnet", "--live"]) == 1
    err = capsys.readouterr().err
    assert "live trading on binance mainnet sends real orders with real money; pass allow_mainnet=True" in err
    assert "Traceback" not in err and "s" * 64 not in err


def test_ctrl_c_in_live_mode_leaves_every_order_accounted_for_in_the_journal(strategy_file, tmp_path):
    journal_path = tmp_path / "orders.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtrade_core.cli", "run", f"{strategy_file}:HoldStrategy", "--live",
         "--exchange", "binance", "--symbol", "BTC/USDT", "--speed", "60", "--backfill-bars", "5",
         "--param", "hold=100000", "--journal", str(journal_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        for line in proc.stdout:  # bounded by the timeout of communicate() below if the fill never comes
            if line.startswith("order BTC/USDT Completed"):
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "(interrupted)" in out
    assert re.search(r"^report  orders +1 Completed$", out, re.M), out

    from realtrade_core.journal import Journal

    journal = Journal(journal_path)
    try:
        (order,) = journal.orders("BTC/USDT")  # the buy, written before the process ended
        assert order.side == "buy" and not order.is_open and order.filled == order.amount > 0
        assert journal.fills("BTC/USDT") and not journal.open_orders()
    finally:
        journal.close()


def test_a_second_ctrl_c_stops_at_once_still_cleanly(strategy_file):
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtrade_core.cli", "run", f"{strategy_file}:HoldStrategy",
         "--exchange", "binance", "--symbol", "BTC/USDT", "--speed", "60", "--backfill-bars", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        for line in proc.stdout:  # bounded by the timeout of communicate() below if LIVE never comes
            if "BTC/USDT LIVE" in line:
                break
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)  # impatient: the second one does not wait for the bar
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted (Ctrl-C): stopping" in err and "Traceback" not in err
    assert "(interrupted)" in out


def test_the_example_config_runs_the_example_strategy(monkeypatch, capsys):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # the paths in examples/run.toml are the checkout's
    assert main(["run", "--config", "examples/run.toml"]) == 0
    out = capsys.readouterr().out
    assert "realtrade run: SmaCross on binance emulator, BTC/USDT 1m, paper cash 10,000.00" in out
    assert "params {'fast': 5, 'slow': 20}" in out and "data    BTC/USDT: LIVE" in out
    assert re.search(r"^report  orders +\d+ Completed$", out, re.M) and re.search(r"^done +in", out, re.M)


def documented_run_commands() -> list[tuple[str, list[str]]]:
    """Every `realtrade run FILE ...` command line of the README and the getting-started page."""
    root = Path(__file__).resolve().parents[1]
    found = []
    for page in ("README.md", "docs/getting-started.md"):
        for line in (root / page).read_text().splitlines():
            match = re.match(r"^(?:\$ |\.venv/bin/)realtrade (run \S+\.py.*)$", line.strip())
            if match:
                found.append((page, match.group(1).split()))
    return found


def test_the_documented_run_commands_work_as_written(monkeypatch, capsys):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    monkeypatch.delenv("REALTRADE_BINANCE_API_KEY", raising=False)
    monkeypatch.delenv("REALTRADE_BINANCE_SECRET", raising=False)
    commands = documented_run_commands()
    assert len(commands) >= 3, commands
    for page, args in commands:
        if "--speed" in args:
            args[args.index("--speed") + 1] = "3000"  # the same run, 50 times faster than the page's
        code = main(args)
        captured = capsys.readouterr()
        if "--venue" in args and args[args.index("--venue") + 1] == "testnet":
            # without the keys the page exports first: refused before any request is made
            assert code == 1 and "live trading needs an API key and secret of your testnet account" in captured.err
            continue
        assert code == 0, (page, args, captured.err)
        assert captured.out.startswith("realtrade run: SmaCross on binance emulator, BTC/USDT 1m, paper cash 10,000.00")
        assert re.search(r"^done +in [\d.]+ s$", captured.out, re.M)
