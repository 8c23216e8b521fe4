"""realtrade-binance runs the core's numbered conformance suite (RT-101 ... RT-802) and passes all of it.

Every case runs against the Binance emulator dialect on 127.0.0.1; the list of cases and what each
needs is in realtrade_core/testing/cases.py and docs/plugins.md.
"""

from realtrade_core.testing import ExchangeConformance


class TestBinanceConformance(ExchangeConformance):
    exchange = "binance"
