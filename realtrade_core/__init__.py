"""realtrade: take a backtrader strategy from backtest to live crypto trading.

Importing this package is cheap: it brings neither ccxt nor backtrader nor any exchange plugin,
nor pluggy or the package-metadata machinery (they come when a plugin is loaded or listed).
Exchanges are installed as separate distributions and loaded by name::

    import realtrade_core as rt

    rt.list_exchanges()                 # what is installed (package metadata only)
    spec = rt.load_exchange("binance")  # imports that one plugin
    store = rt.get_store("binance", venue="emulator")  # data and broker for Cerebro
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    ConfigurationError,
    DuplicateExchangeError,
    EmulatorError,
    ExchangeDisabledError,
    ExchangeError,
    ExchangeNotFoundError,
    PluginError,
    PluginLoadError,
    PluginValidationError,
    RealtradeError,
    WebSocketContractError,
)
from .host import set_host_factory as _set_host_factory

__version__ = "0.1.0"

__all__ = [
    "BaseWebSocket",
    "Broker",
    "Capabilities",
    "ConfigurationError",
    "Data",
    "DuplicateExchangeError",
    "EmulatorError",
    "ExchangeBackBroker",
    "ExchangeCommission",
    "ExchangeDisabledError",
    "ExchangeError",
    "ExchangeInfo",
    "ExchangeNotFoundError",
    "ExchangeSpec",
    "FundingRates",
    "MalformedMessage",
    "MarketRules",
    "OrderRequest",
    "PerpetualCommission",
    "PluginError",
    "PluginLoadError",
    "PluginValidationError",
    "RealtradeError",
    "Store",
    "StoreEvent",
    "Veto",
    "WebSocketContractError",
    "__version__",
    "clear_stores",
    "get_plugin_host",
    "get_store",
    "hookimpl",
    "list_exchanges",
    "load_exchange",
]

# Everything but the errors is resolved on first access: the base classes bring backtrader and
# websocket-client, hookimpl pluggy, discovery and the records dataclasses, MalformedMessage
# decimal and date parsing. `import realtrade_core` stays within twice a bare interpreter's start.
_LAZY = {
    "get_plugin_host": ".plugins",
    "list_exchanges": ".plugins",
    "load_exchange": ".plugins",
    "Capabilities": ".spec",
    "ExchangeInfo": ".spec",
    "ExchangeSpec": ".spec",
    "OrderRequest": ".spec",
    "StoreEvent": ".spec",
    "Veto": ".spec",
    "hookimpl": ".hookspecs",
    "MalformedMessage": ".validation",
    "Store": ".store",
    "get_store": ".store",
    "clear_stores": ".store",
    "Broker": ".broker",
    "Data": ".feed",
    "BaseWebSocket": ".websocket",
    "MarketRules": ".rules",
    "ExchangeBackBroker": ".backtest",
    "ExchangeCommission": ".backtest",
    "PerpetualCommission": ".backtest",
    "FundingRates": ".perpetual",
}

if TYPE_CHECKING:
    from .backtest import ExchangeBackBroker, ExchangeCommission, PerpetualCommission
    from .broker import Broker
    from .feed import Data
    from .hookspecs import hookimpl
    from .perpetual import FundingRates
    from .plugins import get_plugin_host, list_exchanges, load_exchange
    from .rules import MarketRules
    from .spec import Capabilities, ExchangeInfo, ExchangeSpec, OrderRequest, StoreEvent, Veto
    from .store import Store, clear_stores, get_store
    from .validation import MalformedMessage
    from .websocket import BaseWebSocket


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _make_host() -> Any:
    """The process's plugin host, made by discovery, imported only when a host is first needed
    (the layers below discovery ask realtrade_core.host for it)."""
    from .plugins import PluginHost

    return PluginHost()


_set_host_factory(_make_host)
