"""Registers the Bybit exchange with realtrade (entry point ``realtrade.exchanges: bybit``)."""

from __future__ import annotations

from realtrade_core import Capabilities, ExchangeSpec, hookimpl


@hookimpl
def realtrade_exchange() -> ExchangeSpec:
    from realtrade_core.broker import Broker

    from .emulator import BybitDialect
    from .execution import BybitExecution
    from .store import BybitData, BybitStore
    from .websocket import BybitWebSocket

    return ExchangeSpec(
        name="bybit",
        store=BybitStore,
        broker=Broker,
        feed=BybitData,
        execution=BybitExecution(),
        websocket=BybitWebSocket,
        emulator=BybitDialect,
        capabilities=Capabilities(market_types=frozenset({"spot", "perpetual"})),
        description="Bybit spot and linear perpetuals",
    )
