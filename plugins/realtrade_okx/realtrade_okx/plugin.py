"""Registers the OKX exchange with realtrade (entry point ``realtrade.exchanges: okx``)."""

from __future__ import annotations

from realtrade_core import Capabilities, ExchangeSpec, hookimpl


@hookimpl
def realtrade_exchange() -> ExchangeSpec:
    # Imported here, not at the top: listing exchanges must not import ccxt or backtrader.
    from .broker import OkxBroker
    from .emulator import OkxDialect
    from .execution import OkxExecution
    from .store import OkxData, OkxStore
    from .websocket import OkxWebSocket

    return ExchangeSpec(
        name="okx",
        store=OkxStore,
        broker=OkxBroker,
        feed=OkxData,
        execution=OkxExecution(),
        websocket=OkxWebSocket,
        emulator=OkxDialect,
        capabilities=Capabilities(
            # OKX files stop orders apart, as algo orders (/api/v5/trade/order-algo, cancelled
            # with cancel-algos, listed by orders-algo-pending): the plugin does not send them
            # yet, and its emulator does not serve those endpoints, so stops are declared off.
            order_types=frozenset({"market", "limit"}),
        ),
        description="OKX spot",
    )
