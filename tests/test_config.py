"""Settings: command line > environment > file > default, every bad value named, keys from the
environment, and docs/configuration.md held to the settings table."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from realtrade_core.config import SETTINGS, credential_variables, load_config, reference_markdown
from realtrade_core.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "realtrade.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_precedence_command_line_over_environment_over_file_over_default(tmp_path):
    path = write(
        tmp_path,
        """
        exchange = "bybit"
        venue = "testnet"
        cash = 500
        [emulator]
        speed = 60
        [exchanges.bybit]
        api_key = "file-key-0123456789"
        secret = "file-secret-0123456789"
        """,
    )
    env = {"REALTRADE_CONFIG": str(path), "REALTRADE_BYBIT_API_KEY": "env-key-0123456789",
           "REALTRADE_BYBIT_SECRET": "env-secret-0123456789"}  # fmt: skip
    config = load_config({"venue": "emulator", "cash": None}, environ=env)
    assert config["venue"] == "emulator" and config.sources["venue"] == "command line"
    assert config["cash"] == 500.0 and config.sources["cash"] == str(path)
    assert config["emulator.speed"] == 60.0 and config["timeframe"] == "1m" and config.sources["timeframe"] == "default"
    assert config.credentials("bybit") == ("env-key-0123456789", "env-secret-0123456789")  # environment over file
    assert load_config(path=path, environ={}).credentials("bybit") == ("file-key-0123456789", "file-secret-0123456789")
    assert load_config(environ={}).credentials("binance") == (None, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('venue = "mainet"', r"one of mainnet, testnet, emulator, got 'mainet'\. Did you mean 'mainnet'\?"),
        ("cash = -5", r"cash must be more than 0, got -5"),
        ('cash = "lots"', r"cash must be a number, got 'lots'"),
        ("backfill_bars = 2.5", r"backfill_bars must be a whole number, got 2\.5"),
        ('symbols = "BTC/USDT"\nsymbol = "x"', r"unknown setting 'symbol'\. Did you mean 'symbols'\?"),
        ("[emulator]\nsped = 3", r"unknown setting 'emulator\.sped'\. Did you mean 'emulator\.speed'\?"),
        ("[exchanges.binance]\nkey = 'x'", r"\[exchanges\.binance\] has no setting 'key'; it takes api_key and secret"),
        ("venue = ", r"is not valid TOML"),
        ("allow_mainnet = true", r"unknown setting 'allow_mainnet'"),  # real money is a command-line opt-in only
    ],
)  # fmt: skip
def test_bad_values_are_named_with_what_is_allowed(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError, match=message):
        load_config(path=path, environ={})


def test_a_bad_command_line_value_names_its_option():
    with pytest.raises(ConfigurationError, match=r"--cash: cash must be more than 0"):
        load_config({"cash": 0.0}, environ={})
    with pytest.raises(ConfigurationError, match=r"config file .*nothing\.toml does not exist"):
        load_config(path="nothing.toml", environ={})


def test_half_a_key_pair_in_the_environment_is_refused():
    config = load_config(environ={"REALTRADE_BINANCE_API_KEY": "k" * 20})
    with pytest.raises(ConfigurationError, match="set both REALTRADE_BINANCE_API_KEY and REALTRADE_BINANCE_SECRET"):
        config.credentials("binance")
    assert credential_variables("ccxt:kraken") == ("REALTRADE_CCXT_KRAKEN_API_KEY", "REALTRADE_CCXT_KRAKEN_SECRET")


def test_the_configuration_reference_is_the_settings_table():
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert reference_markdown() in doc, "regenerate the table in docs/configuration.md from reference_markdown()"
    for setting in SETTINGS:
        assert f"`{setting.key.rpartition('.')[2]}`" in doc
