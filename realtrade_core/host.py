"""The process's plugin host as the layers below plugin discovery reach it.

Stores, brokers, the live session and the emulator call plugins (pre-trade checks, order and
store events) and look exchanges up by name. Plugin discovery (:mod:`realtrade_core.plugins`)
sits above them: it imports the base classes to check what a plugin registers. So they never
import discovery; they ask this module for the host, and discovery installs how to make one
(:class:`~realtrade_core.plugins.PluginHost`); ``import realtrade_core`` installs a factory that
imports discovery on first use, so the package import stays light. Dependencies then point one
way: plugins -> store/broker -> host.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # annotations only: the host is reached without importing the records
    from .spec import ExchangeInfo, ExchangeSpec, OrderRequest, StoreEvent, Veto

__all__ = ["Host", "existing_plugin_host", "get_plugin_host", "load_exchange", "reset_plugin_host", "set_host_factory"]


class Host(Protocol):
    """What the core asks of the plugin host (one typed method per hook, and look-ups)."""

    def load_exchange(self, name: str) -> ExchangeSpec:
        """The validated spec of exchange ``name`` (imports its plugin on first use)."""
        ...

    def list_exchanges(self) -> list[ExchangeInfo]:
        """Every installed exchange with its status in this process (package metadata only)."""
        ...

    def pre_trade(self, request: OrderRequest) -> list[Veto]:
        """Every veto raised against ``request``; empty means the order may be sent."""
        ...

    def order_event(self, exchange: str, event: object) -> None:
        """Tell observers (alerts, monitoring) about an order event; never raises."""
        ...

    def store_event(self, event: StoreEvent) -> None:
        """Tell observers about a store's connection change or error; never raises."""
        ...


_host: Host | None = None
_factory: Callable[[], Host] | None = None
_lock = threading.Lock()


def set_host_factory(factory: Callable[[], Host]) -> None:
    """How to make the process-wide host on first use (plugin discovery sets it)."""
    global _factory
    with _lock:
        _factory = factory


def get_plugin_host() -> Host:
    """The process-wide plugin host, created on first use."""
    global _host
    with _lock:
        host, factory = _host, _factory
    if host is not None:
        return host
    if factory is None:  # only when realtrade_core was never imported
        raise RuntimeError("no plugin host: import realtrade_core (it sets up plugin discovery) first")
    # Made outside the lock: the factory may import discovery, which installs its own factory
    # here (and an import must never wait on a lock another thread holds while importing).
    made = factory()
    with _lock:
        if _host is None:
            _host = made
        return _host


def existing_plugin_host() -> Host | None:
    """The process-wide host if one has been made; never makes one."""
    with _lock:
        return _host


def reset_plugin_host(host: Host | None = None) -> Host | None:
    """Replace the process-wide host (tests); returns the previous one. ``None`` makes a fresh
    one on next use."""
    global _host
    with _lock:
        previous, _host = _host, host
        return previous


def load_exchange(name: str) -> ExchangeSpec:
    """The validated :class:`~realtrade_core.spec.ExchangeSpec` of exchange ``name``."""
    return get_plugin_host().load_exchange(name)
