"""The OKX broker: the core broker with client order ids OKX accepts, and no live stop orders."""

from __future__ import annotations

import uuid

import backtrader as bt

from realtrade_core.broker import Broker

#: Order kinds OKX files as algo orders (/api/v5/trade/order-algo), which this plugin does not
#: send: its capabilities declare no "stop" or "stop_limit" orders.
_ALGO_KINDS = {
    bt.Order.Stop: "Stop",
    bt.Order.StopLimit: "StopLimit",
    bt.Order.StopTrail: "StopTrail",
    bt.Order.StopTrailLimit: "StopTrailLimit",
}


class OkxBroker(Broker):
    """The core :class:`~realtrade_core.broker.Broker` (paper and live) with two OKX rules:

    - client order ids are at most 32 letters and digits (OKX's ``clOrdId`` takes no ``-``);
    - a live Stop, StopLimit or trailing order is Rejected before anything is sent, saying why:
      OKX keeps such orders apart as algo orders, with their own endpoints, which the plugin
      does not speak yet. Paper trading simulates them as for any exchange.
    """

    def new_client_order_id(self) -> str:
        return f"rt{uuid.uuid4().hex[:30]}"  # 32 characters

    def pre_trade_veto(self, order: bt.Order) -> str | None:
        kind = _ALGO_KINDS.get(order.exectype)
        if kind is not None and not self.paper:
            return (
                f"okx: {kind} orders are not supported live (OKX files them as algo orders, which "
                f"realtrade-okx does not send); use Market or Limit orders, or paper mode"
            )
        return super().pre_trade_veto(order)
