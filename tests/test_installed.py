"""The installed distributions are discovered through their entry points, and only those.

``REALTRADE_EXPECT_EXCHANGES`` names the exchanges this environment installed (tox sets it per
environment: "" for the core alone, "binance", "bybit", "okx", "binance,bybit,okx"); without it the
README's install, core plus the three plugins, is expected.
"""

from __future__ import annotations

import os
from importlib.metadata import version

import pytest

import realtrade_core
from realtrade_core.plugins import PluginHost

EXPECTED = sorted(
    name.strip()
    for name in os.environ.get("REALTRADE_EXPECT_EXCHANGES", "binance,bybit,okx").split(",")
    if name.strip()
)


def test_exactly_the_installed_exchanges_are_listed():
    rows = PluginHost().list_exchanges()
    assert sorted(r.name for r in rows) == EXPECTED
    for row in rows:
        assert row.distribution == f"realtrade-{row.name}"
        assert row.version == version(row.distribution)
        assert row.status == "installed"


@pytest.mark.parametrize("name", EXPECTED)
def test_each_installed_exchange_loads_and_validates(name):
    spec = PluginHost().load_exchange(name)
    assert spec.name == name
    assert spec.emulator is not None and spec.websocket is not None


def test_core_version_matches_its_distribution():
    assert realtrade_core.__version__ == version("realtrade-core")


def test_a_missing_plugin_names_its_distribution():
    absent = next(n for n in ("binance", "bybit", "kraken") if n not in EXPECTED)
    # Only a published plugin is offered to pip install; for kraken, ccxt's generic adapter.
    advice = "'ccxt:kraken'" if absent == "kraken" else f"pip install realtrade-{absent}"
    with pytest.raises(realtrade_core.ExchangeNotFoundError, match=advice):
        PluginHost().load_exchange(absent)
