"""realtrade-okx runs realtrade's conformance suite (RT-101 ... RT-802) against its OKX emulator
dialect on 127.0.0.1: every case its capabilities declare passes; the stop and bracket cases
(RT-505, RT-506) skip, since the plugin declares stop orders off (``pytest -ra`` says why)."""

from realtrade_core.testing import ExchangeConformance


class TestOkxConformance(ExchangeConformance):
    exchange = "okx"
    symbol = "BTC/USDT"
