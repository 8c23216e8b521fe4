"""The `realtrade` command: version, the exchanges table and JSON, and staying light."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fakedist import make_dist

import realtrade_core
from realtrade_core.cli import main
from realtrade_core.plugins import PluginHost, reset_plugin_host


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "realtrade_core.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_version_prints_the_package_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"realtrade {realtrade_core.__version__}"


def test_exchanges_json_has_the_documented_keys():
    result = run_cli("exchanges", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    expected = os.environ.get("REALTRADE_EXPECT_EXCHANGES", "binance,bybit,okx")
    assert sorted(r["name"] for r in rows) == sorted(n for n in expected.split(",") if n)
    for row in rows:
        assert {"name", "distribution", "version", "status"} <= set(row)
        assert set(row) <= {"name", "distribution", "version", "status", "error"}


def test_listing_exchanges_imports_no_plugin_ccxt_or_backtrader():
    probe = (
        "import sys\n"
        "from realtrade_core.cli import main\n"
        "main(['exchanges'])\n"
        "main(['exchanges', '--json'])\n"
        "top = {m.split('.')[0] for m in sys.modules}\n"
        "heavy = sorted(t for t in top if t in ('ccxt', 'backtrader', 'websocket', 'aiohttp')\n"
        "               or t.startswith('realtrade_') and t != 'realtrade_core')\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "HEAVY="


def test_table_shows_a_broken_plugin_without_failing(tmp_path, monkeypatch, capsys):
    make_dist(
        tmp_path, "broken-dist", "0.9", {"brokenx": "brokenx_plugin"}, {"brokenx_plugin": "raise RuntimeError('boom')"}
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    previous = reset_plugin_host(PluginHost())
    try:
        assert main(["exchanges"]) == 0
        listed = capsys.readouterr().out
        assert "brokenx" in listed and "broken-dist" in listed and "installed" in listed
        assert main(["exchanges", "--check"]) == 1  # --check imports each plugin
        checked = capsys.readouterr().out
        assert "error" in checked and "boom" in checked
    finally:
        reset_plugin_host(previous)
        sys.modules.pop("brokenx_plugin", None)


def test_no_command_prints_help():
    result = run_cli()
    assert result.returncode == 2
    assert "exchanges" in result.stdout and "emulator" in result.stdout


def test_get_store_is_reachable_from_the_package_without_importing_backtrader():
    code = "import sys, realtrade_core as rt; rt.get_store; print('backtrader' in sys.modules, 'ccxt' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False False", result.stderr


# --- click: help, usage errors, logging ----------------------------------------------------------


def test_every_command_has_help(capsys):
    from realtrade_core.cli import COMMANDS

    for name in COMMANDS:
        assert main([name, "--help"]) == 0, name
        out = capsys.readouterr().out
        assert f"Usage: realtrade {name} [OPTIONS]" in out and "--help" in out, out
    assert main(["--help"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in COMMANDS)


def test_usage_errors_exit_2_with_the_problem_named(capsys):
    assert main(["demo", "--bars", "0"]) == 2
    assert "Invalid value for '--bars': 0 is not in the range x>=1" in capsys.readouterr().err
    assert main(["demo", "--symbol", "BTC/USDX"]) == 2
    err = capsys.readouterr().err
    assert "the demo has no market 'BTC/USDX'. Did you mean 'BTC/USDT'?" in err and "Traceback" not in err
    assert main(["demo", "--speed", "-1"]) == 2
    assert main(["exchangs"]) == 2
    assert "no command 'exchangs'. Did you mean 'exchanges'?" in capsys.readouterr().err
    assert main(["--log-level", "loud", "exchanges"]) == 2
    assert "'loud' is not one of" in capsys.readouterr().err


def test_trace_hooks_switch_prints_hook_calls_from_the_cli():
    env = {**os.environ, "REALTRADE_TRACE_HOOKS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "realtrade_core.cli", "exchanges", "--check"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    if os.environ.get("REALTRADE_EXPECT_EXCHANGES", "binance,bybit,okx"):  # some exchange is installed to trace
        assert "realtrade_core.hooks: call realtrade_exchange()" in result.stderr
    quiet = subprocess.run(
        [sys.executable, "-m", "realtrade_core.cli", "exchanges", "--check"], capture_output=True, text=True, timeout=60
    )
    assert "realtrade_core.hooks" not in quiet.stderr


def test_the_testing_helpers_import_without_pytest():
    code = (
        "import sys; sys.modules['pytest'] = None\n"  # as if pytest were not installed
        "from realtrade_core.testing import wait_until, ExchangeConformance\n"
        "print(wait_until(lambda: 'ready'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ready", result.stderr


def test_the_cli_reference_lists_every_command_and_option():
    import click

    from realtrade_core.cli import COMMANDS, cli

    doc = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")
    with click.Context(cli, info_name="realtrade") as ctx:
        for name in COMMANDS:
            assert f"## realtrade {name}\n" in doc, name
            for param in cli.get_command(ctx, name).params:
                for opt in getattr(param, "opts", []):
                    if opt.startswith("-"):
                        assert opt in doc, f"docs/cli.md lacks {name} {opt}: regenerate it from --help"


def test_shell_completion_completes_commands_options_and_choices():
    def complete(words: str, index: int) -> list[str]:
        env = {**os.environ, "_REALTRADE_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(index)}
        result = subprocess.run([sys.executable, "-m", "realtrade_core.cli"], capture_output=True, text=True,
                                timeout=60, env=env)  # fmt: skip
        assert result.returncode == 0, result.stderr
        return [line.split(",", 1)[1] for line in result.stdout.splitlines()]

    assert complete("realtrade ru", 1) == ["run"]
    assert complete("realtrade run --ven", 2) == ["--venue"]
    assert complete("realtrade fetch --venue ", 3) == ["mainnet", "testnet", "emulator"]
    script = subprocess.run([sys.executable, "-m", "realtrade_core.cli"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "_REALTRADE_COMPLETE": "bash_source"})  # fmt: skip
    assert "complete -o nosort -F _realtrade_completion realtrade" in script.stdout  # what docs/cli.md evals


def test_verbosity_options_set_the_log_level():
    def stderr(*options: str) -> str:
        command = [sys.executable, "-m", "realtrade_core.cli", *options, "check", "--exchange", "binance"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stderr

    assert stderr() == ""  # WARNING by default: a good run logs nothing
    info = stderr("-v")
    assert " INFO    realtrade_core.emulator.server: binance emulator listening on http://127.0.0.1:" in info
    assert " DEBUG " not in info
    debug = stderr("--log-level", "debug")
    assert " DEBUG   ccxt.base.exchange: GET http://127.0.0.1:" in debug  # ccxt's requests too
    assert stderr("-vv").count(" DEBUG ") > 0
