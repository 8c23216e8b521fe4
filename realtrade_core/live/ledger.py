"""Fills into positions, cash and value: the live broker's ledger (cerebro's thread)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import backtrader as bt

from ..events import Fill, Side
from .model import ZERO, SymbolBook, Tracked, ms_to_num

log = logging.getLogger(__name__)


def apply_to_position(
    size: Decimal, price: Decimal, delta: Decimal, fill_price: Decimal
) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """Decimal position arithmetic (backtrader's ``Position.update`` without float drift).

    Returns ``(new_size, new_price, opened, closed)``; ``opened`` and ``closed`` carry the sign
    of ``delta`` like backtrader's.
    """
    new = size + delta
    if new == 0:
        return new, ZERO, ZERO, delta
    if size == 0:
        return new, fill_price, delta, ZERO
    if (size > 0) == (delta > 0):  # increased
        return new, (size * price + delta * fill_price) / new, delta, ZERO
    if (new > 0) == (size > 0):  # reduced
        return new, price, ZERO, delta
    return new, fill_price, new, -size  # reversed


class LedgerMixin:
    """Applies fills to orders, positions and cash; the strategy's cash, value and positions."""

    @staticmethod
    def _base_delta(fill: Fill, base: str) -> Decimal:
        """The change of the base balance: the amount, less a fee charged in the base asset."""
        delta = fill.amount if fill.side is Side.BUY else -fill.amount
        if fill.fee and fill.fee_currency == base:
            delta -= fill.fee
        return delta

    def _commission(self, fill: Fill, book: SymbolBook) -> float:
        """The fee in the quote asset (backtrader's commission is money)."""
        if not fill.fee:
            return 0.0
        if fill.fee_currency in (None, book.quote):
            return float(fill.fee)
        if fill.fee_currency == book.base:
            return float(fill.fee * fill.price)
        log.info("fee of trade %s paid in %s: recorded in the journal, not in the commission", fill.trade_id,
                 fill.fee_currency)  # fmt: skip
        return 0.0

    def apply_fill(self, fill: Fill, source: str) -> None:
        assert self.journal is not None
        tracked = self._find(fill.client_order_id, fill.order_id, fill.symbol)
        if (
            tracked is None
            and fill.order_id
            and any(t.order_id is None and not t.done and t.symbol == fill.symbol for t in self.orders.values())
        ):
            # No client id and an order of ours still waits for its acknowledgement: hold the
            # fill until the acknowledgement says whose it is.
            self.parked.setdefault((fill.symbol, str(fill.order_id)), []).append((time.monotonic(), fill, source))
            return
        if not self.journal.record_fill(fill, source):
            return  # already applied (the stream and a REST poll both brought it, or a restart)
        book = self.books.get(fill.symbol)
        if book is None:
            # A market this strategy does not trade: recorded, reported, nothing to keep in step.
            self.put_store(f"fill {fill.trade_id} on {fill.symbol}, a market this broker does not trade: "
                           f"{fill.side.value} {fill.amount} @ {fill.price}")  # fmt: skip
            return
        if tracked is None or tracked.done:
            # Another client on this account, or a fill the order's final state did not count:
            # the account changed, so the position follows; the strategy hears about it.
            self._move_position(book, fill)
            what = "a finished order" if tracked else "an order this broker did not place"
            self.put_store(f"fill {fill.trade_id} of {what} ({fill.side.value} {fill.amount} {fill.symbol} @ "
                           f"{fill.price}): position now {book.size}")  # fmt: skip
        else:
            if not tracked.acked:
                log.debug("fill %s of %s arrived before the REST acknowledgement; matched by client order id",
                          fill.trade_id, tracked.client_order_id)  # fmt: skip
            self._learn_order_id(tracked, fill.order_id)
            self._accept(tracked)
            self._execute(tracked, fill, book)
            self.journal.update_order(tracked.client_order_id, filled=tracked.executed)
        self.journal.set_position(book.symbol, book.size, book.price)
        self._hook(fill)
        if tracked is not None:
            self._progress(tracked)

    def _move_position(self, book: SymbolBook, fill: Fill) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        old_price = book.price
        delta = self._base_delta(fill, book.base)
        book.size, book.price, opened, closed = apply_to_position(book.size, book.price, delta, fill.price)
        book.sync()
        book.last_fill = time.monotonic()
        return opened, closed, old_price, delta

    def _execute(self, tracked: Tracked, fill: Fill, book: SymbolBook, *, historical: bool = False,
                 notify: bool = True) -> None:  # fmt: skip
        """Apply one fill to the backtrader order (and, unless historical, to the position).

        Historical fills (of a re-attached order, already in the balance the position was
        loaded from) complete the order's execution record but move neither the position nor
        the strategy's trades.
        """
        order = tracked.order
        data = order.data
        comminfo = self.broker.getcommissioninfo(data)
        comm = self._commission(fill, book)
        price = float(fill.price)
        gross = float(fill.amount) if fill.side is Side.BUY else -float(fill.amount)
        closed_f = opened_f = 0.0
        closedvalue = closedcomm = openedvalue = openedcomm = pnl = 0.0
        if historical:
            openedcomm = comm
        else:
            opened, closed, old_price, _ = self._move_position(book, fill)
            if closed:
                if book.size == 0 or abs(float(closed)) >= abs(book.trade_size):
                    # Close exactly what the strategy's Trade holds (its float sum), so the trade
                    # closes; what it does not hold existed before the strategy started.
                    closed_f = -book.trade_size
                else:
                    closed_f = float(closed)
                book.trade_size += closed_f
                closedvalue = comminfo.getoperationcost(closed_f, float(old_price))
                pnl = comminfo.profitandloss(-closed_f, float(old_price), price)
            if opened:
                opened_f = float(opened)
                if book.trade_size == 0 or (book.trade_size > 0) == (opened_f > 0):
                    book.trade_size += opened_f
                else:
                    book.trade_size = opened_f
                openedvalue = comminfo.getoperationcost(opened_f, price)
            moved = abs(closed_f) + abs(opened_f)
            if moved:
                closedcomm = comm * abs(closed_f) / moved
                openedcomm = comm - closedcomm
            else:
                openedcomm = comm
        tracked.executed += fill.amount
        order.execute(ms_to_num(fill.time), gross, price, closed_f, closedvalue, closedcomm, opened_f, openedvalue,
                      openedcomm, 0.0, pnl, book.position.size, book.position.price)  # fmt: skip
        order.addcomminfo(comminfo)
        if tracked.executed >= tracked.amount:
            tracked.done = True
        if notify:
            self.broker.notify(order)
            self._after(order)

    def cash(self) -> float:
        if self.currency is None:
            return 0.0
        return float(self.balances.get(self.currency, (ZERO, ZERO))[0])

    def value(self, datas: Iterable[Any] | None = None) -> float:
        if datas is not None:
            return sum(self.books[s].position.size * self.last_price(self.books[s])
                       for s in {self.symbol_of(d) for d in datas} if s in self.books)  # fmt: skip
        free, locked = self.balances.get(self.currency or "", (ZERO, ZERO))
        total = float(free + locked)
        for book in self.books.values():
            if book.quote == self.currency and book.size:
                total += float(book.size) * self.last_price(book)
        return total

    def position(self, data: Any) -> bt.Position:
        return self.book_for_data(data).position
