"""realtrade-binance passes the core's plugin conformance suite."""

from realtrade_core.testing import ExchangeConformance


class TestBinanceConformance(ExchangeConformance):
    exchange = "binance"
