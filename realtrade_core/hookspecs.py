"""The hooks a realtrade plugin can implement.

A plugin is a module (or object) whose functions are decorated with :data:`hookimpl` and named
after one of the specifications below. Exchange plugins are found through the entry-point group
``realtrade.exchanges``; other plugins (risk checks, alerts, monitoring) through
``realtrade.plugins``. Both are registered in one pluggy ``PluginManager("realtrade")``, and the
core calls hooks only through :class:`realtrade_core.plugins.PluginHost`.

A function whose name starts with ``realtrade_`` but matches no specification is an error when
the plugin is loaded (a misspelled hook would otherwise never be called).
"""

from __future__ import annotations

import pluggy

from .spec import ExchangeSpec, OrderRequest, StoreEvent, Veto

PROJECT_NAME = "realtrade"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Decorator for hook implementations: ``@realtrade_core.hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def realtrade_exchange() -> ExchangeSpec:
    """Describe the exchange this plugin provides.

    Called once, when the exchange is first loaded by name (``load_exchange("binance")``), never
    while merely listing exchanges. Return one :class:`~realtrade_core.spec.ExchangeSpec` whose
    ``name`` equals the plugin's entry-point name. The classes are checked against the core base
    classes, and the execution dialect against :class:`~realtrade_core.execution.ExecutionDialect`,
    before the exchange can be used.

    Example::

        @hookimpl
        def realtrade_exchange():
            return ExchangeSpec(name="binance", store=BinanceStore, broker=Broker,
                                feed=BinanceData, execution=BinanceExecution(),
                                websocket=BinanceWebSocket, emulator=BinanceDialect)
    """


@hookspec
def realtrade_pre_trade(request: OrderRequest) -> Veto | None:
    """Check an order before it is sent (paper or live); return a :class:`Veto` to block it.

    Called in cerebro's thread for every order, after the broker has rounded it to the market's
    precision and before anything reaches the exchange. Every implementation is called; if any
    returns a Veto the order is Rejected with that reason and never sent. Return None to allow.

    Example::

        @hookimpl
        def realtrade_pre_trade(request):
            if request.amount * (request.price or 0) > 1_000:
                return Veto("order above the 1,000 USDT limit", source="my-risk")
    """


@hookspec
def realtrade_order_event(exchange: str, event: object) -> None:
    """Observe an order update or fill (a ``realtrade_core.events`` record) as it is applied.

    Called in cerebro's thread after the broker applied the event; the return value is ignored.
    Use it for alerts, logging or monitoring; do not block.

    Example::

        @hookimpl
        def realtrade_order_event(exchange, event):
            if type(event).__name__ == "Fill":
                notify_phone(f"{exchange}: filled {event.amount} {event.symbol} @ {event.price}")
    """


@hookspec
def realtrade_store_event(event: StoreEvent) -> None:
    """Observe a store's connection changes and errors (:class:`StoreEvent`).

    Called from the thread that saw the change (often a WebSocket thread): return quickly and
    never touch backtrader objects. The return value is ignored.

    Example::

        @hookimpl
        def realtrade_store_event(event):
            if event.kind == "disconnected":
                log.warning("%s %s lost its connection: %s", event.exchange, event.venue, event.message)
    """
