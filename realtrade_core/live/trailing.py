"""Trailing stops live (``StopTrail``, ``StopTrailLimit``), as backtrader's BackBroker trails them.

BackBroker checks a trailing stop against each bar at its current stop price, then moves the
stop after the bar by its close (``Order.trailadjust``). Live, the stop rests on the exchange as
a plain stop (stop-limit) order at that price, so it triggers within the bar at its own price as
in a backtest; after each closed bar the broker trails it and, when the price moved, replaces
the exchange order: the resting one is cancelled and, once the cancel is confirmed, the new one
goes out with a new client order id. The strategy sees one order throughout. A stop that fills
before its cancel lands completes as usual. The trail (amount or percent) is journaled: after a
restart a re-attached trailing stop rests at its last price and goes on trailing from there.
"""

from __future__ import annotations

import logging

from .model import Tracked

log = logging.getLogger(__name__)


class TrailingMixin:
    """Trails the live trailing stops of :class:`~realtrade_core.live.session.LiveSession`."""

    def _trail_stops(self) -> None:
        """After each closed bar, move every resting trailing stop by the bar's close."""
        if self.stopping.is_set():
            return
        for tracked in self.orders.trailing():
            order = tracked.order
            data = order.data
            try:
                bars = len(data)
                close = float(data.close[0])
            except (IndexError, TypeError):
                continue
            if tracked.trail_bar is None:
                tracked.trail_bar = bars  # created on this bar: backtrader trailed it at creation
                continue
            if bars <= tracked.trail_bar or close != close:
                continue
            tracked.trail_bar = bars
            before = order.created.price
            order.trailadjust(close)
            if order.created.price == before or tracked.cancelling or not order.alive():
                continue
            log.info("trailing stop %s: %s -> %s, replacing it on the exchange", tracked.client_order_id, before,
                     order.created.price)  # fmt: skip
            tracked.replacing = True
            self._request_cancel(tracked)

    def _replace_trailing(self, tracked: Tracked) -> bool:
        """The cancel of a trailing stop being moved is confirmed: send it at its new price.
        False when ``tracked`` was not being replaced."""
        if not tracked.replacing:
            return False
        order = tracked.order
        tracked.done = True
        assert self.journal is not None
        self.journal.update_order(tracked.client_order_id, reason="replaced: the trailing stop moved")
        remaining = tracked.amount - tracked.executed
        if remaining <= 0 or not order.alive():
            return True
        order.addinfo(client_order_id=None, replaced=tracked.client_order_id)
        self._send(order, held=True)
        return True
