"""realtrade-bybit passes the core's plugin conformance suite."""

from realtrade_core.testing import ExchangeConformance


class TestBybitConformance(ExchangeConformance):
    exchange = "bybit"
