"""Registers the Binance exchange with realtrade (entry point ``realtrade.exchanges: binance``)."""

from __future__ import annotations

from realtrade_core import Capabilities, ExchangeSpec, hookimpl


@hookimpl
def realtrade_exchange() -> ExchangeSpec:
    from realtrade_core.broker import Broker

    from .emulator import BinanceDialect
    from .execution import BinanceExecution
    from .store import BinanceData, BinanceStore
    from .websocket import BinanceWebSocket

    return ExchangeSpec(
        name="binance",
        store=BinanceStore,
        broker=Broker,
        feed=BinanceData,
        execution=BinanceExecution(),
        websocket=BinanceWebSocket,
        emulator=BinanceDialect,
        capabilities=Capabilities(market_types=frozenset({"spot", "perpetual"})),
        description="Binance spot and USDⓈ-M perpetuals",
    )
