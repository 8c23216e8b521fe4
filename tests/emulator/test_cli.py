"""``realtrade emulator``: a real subprocess serving a plugin's dialect until SIGINT.

The plugin is a throwaway installed distribution (dist-info + modules on PYTHONPATH) whose
dialect is tests/emulator/toy_dialect.py, so the command is tested without a real exchange.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).parent

PLUGIN = """
from realtrade_core import ExchangeSpec, hookimpl
from realtrade_core.broker import Broker
from realtrade_core.feed import Data
from realtrade_core.store import Store


class ToyStore(Store):
    exchange = "{name}"


class ToyData(Data):
    exchange = "{name}"


class ToyBroker(Broker):
    exchange = "{name}"


@hookimpl
def realtrade_exchange():
    {dialect_import}
    return ExchangeSpec(name="{name}", store=ToyStore, broker=ToyBroker, feed=ToyData, emulator={emulator})
"""


def install_plugin(root: Path, name: str, with_dialect: bool = True) -> None:
    module = f"realtrade_{name}_plugin"
    info = root / f"realtrade_{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: realtrade-{name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[realtrade.exchanges]\n{name} = {module}\n")
    shutil.copy(HERE / "toy_dialect.py", root / "realtrade_toy_dialect.py")
    source = PLUGIN.format(
        name=name,
        dialect_import="from realtrade_toy_dialect import ToyDialect" if with_dialect else "pass",
        emulator="ToyDialect" if with_dialect else "None",
    )
    (root / f"{module}.py").write_text(source)


@pytest.fixture
def plugin_env(tmp_path) -> dict[str, str]:
    install_plugin(tmp_path / "site", "toy")
    install_plugin(tmp_path / "site", "nodialect", with_dialect=False)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def realtrade(*args: str, env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "realtrade_core.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


class Output:
    """The lines a subprocess prints, read by a thread so every wait on them is bounded."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match:
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no line matching {pattern!r} within {timeout} s; output so far: {self.lines}")
            if line is None:
                pytest.fail(f"process ended without {pattern!r}: {self.lines}\nstderr: {self.proc.stderr.read()}")
            self.lines.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    @property
    def text(self) -> str:
        return "".join(self.lines)


def finish(proc: subprocess.Popen, output: Output | None = None) -> None:
    """Make sure the process is gone and its pipes are closed."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=15)
    if output is not None:
        output._thread.join(timeout=5)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def test_serves_until_sigint_and_prints_how_to_connect(plugin_env):
    proc = realtrade(
        "emulator", "--exchange", "toy", "--port", "0", "--symbol", "BTC/USDT", "--symbol", "ETH/USDT",
        "--speed", "60", "--api-key", "mykey", "--secret", "mysecret",
        env=plugin_env,
    )  # fmt: skip
    output = Output(proc)
    try:
        admin = output.wait_for(r"admin:\s+(http://127\.0\.0\.1:\d+/_emulator/state)").group(1)
        output.wait_for(r"Press Ctrl\+C")
        banner = output.text
        port = re.search(r"listening on http://127\.0\.0\.1:(\d+)", banner).group(1)
        assert "rest:" in banner and f"http://127.0.0.1:{port}/api" in banner
        assert f"ws://127.0.0.1:{port}/ws" in banner
        assert re.search(r"api key:\s+mykey\n", banner) and re.search(r"secret:\s+mysecret\n", banner)
        assert "BTC 10, ETH 10, USDT 100000" in banner

        with urllib.request.urlopen(admin, timeout=5) as response:
            state = json.loads(response.read())
        assert state["exchange"] == "toy"
        assert state["symbols"] == ["BTC/USDT", "ETH/USDT"]
        assert state["speed"] == 60.0

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        output.wait_for("emulator stopped")
        assert "Traceback" not in proc.stderr.read()
    finally:
        finish(proc, output)


def test_sigterm_stops_cleanly_too(plugin_env):
    proc = realtrade("emulator", "--exchange", "toy", env=plugin_env)
    output = Output(proc)
    try:
        output.wait_for(r"Press Ctrl\+C")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        output.wait_for("emulator stopped")
    finally:
        finish(proc, output)


def test_exchange_without_emulator_dialect_is_a_clear_error(plugin_env):
    proc = realtrade("emulator", "--exchange", "nodialect", env=plugin_env)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "'nodialect'" in err and "no emulator dialect" in err
    assert "Traceback" not in err


def test_unknown_exchange_is_a_clear_error(plugin_env):
    proc = realtrade("emulator", "--exchange", "atlantis", env=plugin_env)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "no exchange named 'atlantis'" in err


def test_bad_arguments_are_reported_without_a_traceback(plugin_env):
    proc = realtrade("emulator", "--exchange", "toy", "--symbol", "BTCUSDT", env=plugin_env)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "BASE/QUOTE" in err and "Traceback" not in err


def test_data_option_maps_files_to_symbols():
    from realtrade_core.emulator.cli import _data_argument
    from realtrade_core.errors import ConfigurationError

    assert _data_argument(None, ["BTC/USDT"]) is None
    assert _data_argument(["btc.csv"], ["BTC/USDT"]) == "btc.csv"
    assert _data_argument(["BTC/USDT=b.csv", "ETH/USDT=e.csv"], ["BTC/USDT", "ETH/USDT"]) == {
        "BTC/USDT": "b.csv",
        "ETH/USDT": "e.csv",
    }
    with pytest.raises(ConfigurationError, match="SYMBOL=CSV"):
        _data_argument(["a.csv", "b.csv"], ["BTC/USDT", "ETH/USDT"])


def test_balance_option_sets_the_default_account(plugin_env):
    proc = realtrade(
        "emulator", "--exchange", "toy", "--balance", "USDT=2500.5", "--balance", "eth=0", "--balance", "BTC=1",
        env=plugin_env,
    )  # fmt: skip
    output = Output(proc)
    try:
        output.wait_for(r"Press Ctrl\+C")
        # Given balances replace the defaults; an asset set to 0 holds nothing and is not listed.
        assert re.search(r"balances:\s+BTC 1, USDT 2500\.5\n", output.text)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        finish(proc, output)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("USDT", "give ASSET=AMOUNT, e.g. --balance USDT=10000"),
        ("USDT=ten", "invalid balance 'ten' for USDT"),
        ("USDT=-5", "invalid balance '-5' for USDT"),
        ("US-DT=5", "invalid asset 'US-DT'"),
    ],
)
def test_bad_balance_option_is_a_clear_error(plugin_env, value, message):
    proc = realtrade("emulator", "--exchange", "toy", "--balance", value, env=plugin_env)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert message in err and "Traceback" not in err


def test_lockstep_option_holds_the_market_at_a_close_until_acknowledged(plugin_env, wait_until):
    proc = realtrade("emulator", "--exchange", "toy", "--speed", "1000000", "--lockstep", env=plugin_env)
    output = Output(proc)
    try:
        admin = output.wait_for(r"admin:\s+(http://127\.0\.0\.1:\d+/_emulator)/state").group(1)
        assert output.wait_for(r"clock:.*speed 1e\+06x, lockstep")
        output.wait_for(r"Press Ctrl\+C")

        def state() -> dict:
            with urllib.request.urlopen(admin + "/state", timeout=5) as response:
                return json.loads(response.read())

        waiting = wait_until(lambda: (s := state())["lockstep"]["held_at"] and s)
        held = waiting["lockstep"]["held_at"]
        assert held % 60_000 == 0 and waiting["time"] == held
        request = urllib.request.Request(admin + "/ack", data=json.dumps({"time": held}).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read())["released"] is True
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        finish(proc, output)
