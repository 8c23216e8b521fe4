"""Words Binance's account streams share, spot and USDⓈ-M futures: order statuses, sides and
the server's shutdown notice."""

from __future__ import annotations

from realtrade_core.events import OrderStatus, Side
from realtrade_core.websocket import Reconnect

ORDER_STATUS = {
    "NEW": OrderStatus.NEW,
    "PENDING_NEW": OrderStatus.NEW,  # an order-list leg not yet working
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "PENDING_CANCEL": OrderStatus.CANCELED,  # documented as unused
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,  # self-trade prevention; kept in ``reason``
}
SIDES = {"BUY": Side.BUY, "SELL": Side.SELL}
SHUTDOWN = (Reconnect("serverShutdown: Binance is about to restart the server"),)
