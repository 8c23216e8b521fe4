"""Binance dialect of the realtrade exchange emulator (placeholder until the dialect lands)."""

from __future__ import annotations

from realtrade_core.emulator.dialect import EmulatorDialect


class BinanceDialect(EmulatorDialect):
    name = "binance"
