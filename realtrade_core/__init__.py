"""realtrade: take a backtrader strategy from backtest to live crypto trading.

Importing this package is cheap: it brings neither ccxt nor backtrader nor any exchange plugin.
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
from .hookspecs import hookimpl
from .plugins import get_plugin_host, list_exchanges, load_exchange
from .spec import Capabilities, ExchangeInfo, ExchangeSpec, OrderRequest, StoreEvent, Veto
from .validation import MalformedMessage

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

# The base classes import backtrader / websocket-client: resolve them on first access only.
_LAZY = {
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
    from .perpetual import FundingRates
    from .broker import Broker
    from .feed import Data
    from .rules import MarketRules
    from .store import Store, clear_stores, get_store
    from .websocket import BaseWebSocket


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
