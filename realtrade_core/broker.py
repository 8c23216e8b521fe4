"""Broker: paper trading (the default) or live orders, behind backtrader's broker interface.

Paper mode *is* backtrader's BackBroker, fed with the live bars: the same strategy on the same
candles gives the same orders, fills, trades and final value in a backtest and in paper
trading, by construction. Commission defaults to the exchange's taker fee for each market
(``commission=`` overrides it).

Every order, paper or live, first passes the ``realtrade_pre_trade`` hooks (risk plugins); a
veto turns it into a Rejected order carrying the reason, and nothing is sent.

Plugin contract (subclass :class:`Broker`):

=====================  ========  ===========================================================
member                 required  meaning
=====================  ========  ===========================================================
``exchange``           yes       exchange name, equal to the plugin's entry-point name
=====================  ========  ===========================================================
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, ClassVar

import backtrader as bt

from .contract import Contract
from .errors import ConfigurationError
from .spec import OrderRequest

log = logging.getLogger(__name__)

MODES = ("paper", "live")
_ORDER_TYPES = {
    bt.Order.Market: "market",
    bt.Order.Limit: "limit",
    bt.Order.Stop: "stop",
    bt.Order.StopLimit: "stop_limit",
    bt.Order.Close: "market",
}


def new_client_order_id(prefix: str = "rt") -> str:
    """A unique client order id: at most 36 characters of ``[A-Za-z0-9_-]`` (both exchanges' rule)."""
    return f"{prefix}-{uuid.uuid4().hex[:30]}"


class Broker(Contract, bt.brokers.BackBroker):
    """Base class of every exchange broker.

    Parameters beyond BackBroker's (``cash``, ``checksubmit``, ``coc``, ...):

    - ``store``: the :class:`~realtrade_core.store.Store` (set by ``store.getbroker``).
    - ``mode`` (``"paper"``): ``"paper"`` simulates; ``"live"`` sends real orders.
    - ``commission`` (None): fraction per trade; None uses each market's taker fee.
    - ``allow_mainnet`` (False): live orders on mainnet need this explicit opt-in.
    """

    _required = ("exchange",)
    exchange: ClassVar[str | None] = None

    params = (
        ("store", None),
        ("mode", "paper"),
        ("commission", None),
        ("allow_mainnet", False),
    )

    def __init__(self) -> None:
        super().__init__()
        if self.p.mode not in MODES:
            raise ConfigurationError(f"unknown broker mode {self.p.mode!r}; use 'paper' (default) or 'live'")
        if self.p.store is None:
            raise ConfigurationError("a realtrade broker needs a store: use store.getbroker()")
        if self.p.mode == "live":
            self.check_live_allowed()
        if self.p.commission is not None:
            self.setcommission(commission=float(self.p.commission))
        self._fee_set: set[str] = set()

    @property
    def paper(self) -> bool:
        return self.p.mode == "paper"

    def check_live_allowed(self) -> None:
        """Refuse live orders on mainnet without the explicit opt-in, before anything is sent."""
        store = self.p.store
        if store.venue == "mainnet" and not self.p.allow_mainnet:
            raise ConfigurationError(
                f"live trading on {store.exchange} mainnet sends real orders with real money; "
                f"pass allow_mainnet=True to store.getbroker(mode='live', ...) to confirm, "
                f"or use venue='testnet' / 'emulator', or mode='paper'"
            )

    def start(self) -> None:
        super().start()
        self.p.store.start()

    # --- commission from the exchange's fee schedule ------------------------------------------

    def getcommissioninfo(self, data: Any) -> Any:
        name = data._name
        if self.p.commission is None and name not in self._fee_set and hasattr(data, "_market"):
            fee = data._market.get("taker")
            if fee is not None:
                self.setcommission(commission=float(fee), name=name)
            self._fee_set.add(name)
        return super().getcommissioninfo(data)

    # --- pre-trade checks ------------------------------------------------------------------------

    def submit(self, order: bt.Order, check: bool = True) -> bt.Order:
        reason = self.pre_trade_veto(order)
        if reason is not None:
            order.addinfo(reject_reason=reason)
            order.reject(self)
            self.notify(order)
            return order
        return super().submit(order, check)

    def pre_trade_veto(self, order: bt.Order) -> str | None:
        """The first pre-trade veto's reason for ``order``, or None when it may go."""
        from .plugins import get_plugin_host

        data = order.data
        store = self.p.store
        request = OrderRequest(
            exchange=store.exchange or "",
            symbol=getattr(data, "_symbol", data._name),
            side="buy" if order.isbuy() else "sell",
            type=_ORDER_TYPES.get(order.exectype, "market"),
            amount=abs(order.created.size),
            price=order.created.price,
            client_order_id=order.info.get("client_order_id") or new_client_order_id(),
            venue=store.venue,
            paper=self.paper,
        )
        order.addinfo(client_order_id=request.client_order_id)
        vetoes = get_plugin_host().pre_trade(request)
        if vetoes:
            return "; ".join(f"{v.reason} ({v.source})" if v.source else v.reason for v in vetoes)
        return None
