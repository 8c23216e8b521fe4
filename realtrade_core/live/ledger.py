"""Fills into positions, cash and value: the live broker's ledger (cerebro's thread)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import backtrader as bt

from ..events import Fill, Side
from .model import ZERO, SymbolBook, Tracked, dec, ms_to_num

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
    """The strategy's own ledger (DESIGN §5a): its cash, positions and value, moved by its fills.

    A live broker trades a capital of its own. Positions count filled amounts as a backtest
    does; a fee the exchange takes in the coin is commission (valued in the quote at the fill
    price) and is remembered as ``coin_fees``, so an exit can sell what the account really holds
    for the position. The account is the ceiling: where it holds less than the ledger, the
    ledger shrinks to it (see :meth:`check_ceiling`). Fills are checked before they count.
    """

    def _fee_value(self, fill: Fill, book: SymbolBook) -> Decimal:
        """The fee in the quote asset: a fee in the coin at the fill price, a third currency (BNB)
        at its last price in the quote."""
        if not fill.fee:
            return ZERO
        if fill.fee_currency in (None, book.quote):
            return fill.fee
        if fill.fee_currency == book.base:
            return fill.fee * fill.price
        price = self._asset_price(fill.fee_currency, book.quote)
        if price is None:
            self.put_store(f"fee of trade {fill.trade_id} paid in {fill.fee_currency}: no {fill.fee_currency}/"
                           f"{book.quote} price to value it, counted as 0")  # fmt: skip
            return ZERO
        return fill.fee * price

    def _asset_price(self, asset: str, quote: str) -> Decimal | None:
        """The last price of ``asset`` in ``quote``: from a market this broker trades, else a ticker."""
        symbol = f"{asset}/{quote}"
        book = self.books.get(symbol)
        if book is not None and book.last > 0:
            return Decimal(str(book.last))
        cached = self.asset_prices.get(symbol)
        if cached is not None and time.monotonic() - cached[1] < 60:
            return cached[0]
        try:
            ticker = self.io.read(self.store.client.fetch_ticker, symbol)
            price = Decimal(str(ticker.get("last") or ticker.get("close")))
        except Exception as exc:
            log.warning("no %s price to value a fee (%s)", symbol, self.io.scrub(exc) if self.io else exc)
            return None
        if not price.is_finite() or price <= 0:
            return None
        self.asset_prices[symbol] = (price, time.monotonic())
        return price

    # --- cash, in each quote currency the strategy trades in ------------------------------------

    def cash_in(self, currency: str) -> Decimal:
        """The ledger's cash in ``currency`` (its main currency, or another market's quote)."""
        return self.ledger_cash if currency == self.currency else self.other_cash.get(currency, ZERO)

    def _add_cash(self, currency: str, delta: Decimal) -> None:
        if currency == self.currency:
            self.ledger_cash += delta
        else:
            self.other_cash[currency] = self.other_cash.get(currency, ZERO) + delta

    def _set_cash(self, currency: str, amount: Decimal) -> None:
        self._add_cash(currency, amount - self.cash_in(currency))

    def _rate(self, currency: str) -> float:
        """What one unit of ``currency`` is worth in the ledger's main currency (0 when no
        price is to be had: reported once)."""
        if currency == self.currency or self.currency is None:
            return 1.0
        price = self._asset_price(currency, self.currency)
        if price is None:
            if currency not in self.unvalued:
                self.unvalued.add(currency)
                self.put_store(f"no {currency}/{self.currency} price: this strategy's {currency} is left out of "
                               f"getvalue() until there is one")  # fmt: skip
            return 0.0
        self.unvalued.discard(currency)
        return float(price)

    def _commission(self, fill: Fill, book: SymbolBook) -> float:
        """backtrader's commission: the fee in the quote asset, whatever currency it was paid in."""
        return float(self._fee_value(fill, book))

    @staticmethod
    def _ledger_delta(fill: Fill, tracked: Tracked | None) -> Decimal:
        """How far a fill moves the ledger's position: its amount, or for an exit sent short by
        the fees taken in the coin, its share of what that exit closes."""
        if fill.side is Side.BUY:
            return fill.amount
        if tracked is not None and tracked.closes is not None and tracked.amount:
            before = tracked.executed  # what the order had filled before this fill
            if before >= tracked.amount:  # a fill beyond what the order counted: its plain share
                return -(fill.amount * tracked.closes / tracked.amount)
            # What the exit has closed after this fill less what it had closed before, so that the
            # shares add up to ``closes`` exactly: a 1e-30 remainder would leave a flat position.
            after = before + fill.amount
            closed_after = tracked.closes if after >= tracked.amount else tracked.closes * after / tracked.amount
            return -(closed_after - tracked.closes * before / tracked.amount)
        return -fill.amount

    # --- fills ------------------------------------------------------------------------------------

    @staticmethod
    def invalid_fill(fill: Fill) -> str | None:
        """Why a fill is not a fill at all (None: its numbers are sound)."""
        for what, value in (("amount", fill.amount), ("price", fill.price)):
            if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
                return f"its {what} {value} is not a positive number"
        if fill.fee is not None and (not isinstance(fill.fee, Decimal) or not fill.fee.is_finite() or fill.fee < 0):
            return f"its fee {fill.fee} is not a number of zero or more"
        return None

    @staticmethod
    def unexpected_fill(fill: Fill, tracked: Tracked) -> str | None:
        """Why a sound fill does not fit the order as the broker knows it (None: it fits)."""
        if fill.side.value != tracked.side:
            return f"it is a {fill.side.value}, the order a {tracked.side}"
        remaining = tracked.amount - tracked.executed
        if fill.amount > remaining:
            return f"it fills {fill.amount}, more than the {remaining} the order has left"
        return None

    def _refuse_fill(self, fill: Fill, tracked: Tracked, problem: str) -> None:
        """A fill that cannot count as it stands: reported once, and the order checked over REST,
        whose records (trades, status, filled amount) then decide."""
        key = (fill.trade_id, problem)
        if key not in self.refused_fills:
            self.refused_fills.add(key)
            self.put_store(f"fill {fill.trade_id} of order {tracked.client_order_id} refused: {problem}; "
                           f"checking the order on the exchange")  # fmt: skip
        if tracked.order_id:
            self.request_audit(orders=[tracked])

    def apply_fill(self, fill: Fill, source: str) -> None:
        assert self.journal is not None
        tracked = self._find(fill.client_order_id, fill.order_id, fill.symbol)
        if (
            tracked is None
            and fill.order_id
            and any(t.order_id is None and t.symbol == fill.symbol for t in self.orders.open())
        ):
            # No client id and an order of ours still waits for its acknowledgement: hold the
            # fill until the acknowledgement says whose it is.
            self.parked.setdefault((fill.symbol, str(fill.order_id)), []).append((time.monotonic(), fill, source))
            return
        book = self.books.get(fill.symbol)
        if tracked is None or book is None:
            # Not an order of this broker (another client on the account, or a market it does not
            # trade): the ledger holds only what the strategy bought, so nothing moves.
            if fill.trade_id not in self.foreign_fills:
                self.foreign_fills.add(fill.trade_id)
                self.put_store(f"fill {fill.trade_id} of an order this broker did not place ({fill.side.value} "
                               f"{fill.amount} {fill.symbol} @ {fill.price}): not this strategy's, its ledger is "
                               f"unchanged")  # fmt: skip
            return
        invalid = self.invalid_fill(fill)
        if invalid is not None:
            self._refuse_fill(fill, tracked, invalid)
            return
        unexpected = None if tracked.done else self.unexpected_fill(fill, tracked)
        if (unexpected is not None or tracked.done) and source == "stream":
            if not self.journal.has_fill(fill.symbol, fill.trade_id):
                self._refuse_fill(fill, tracked, unexpected or "the order is done already")
            return
        with self.journal.batch():  # the fill's record and the ledger it moves: one commit
            if self.journal.record_fill(fill, source):
                self._apply_new_fill(fill, tracked, book, unexpected)

    def _apply_new_fill(self, fill: Fill, tracked: Tracked, book: SymbolBook, unexpected: str | None) -> None:
        """A fill recorded for the first time: the position, the order and the ledger move."""
        assert self.journal is not None
        if tracked.done or unexpected is not None:
            # The exchange's own records (REST) show a fill the broker's order did not count:
            # the exchange is right, the ledger follows, the strategy hears about it.
            self._move_position(book, fill, tracked)
            self.put_store(f"fill {fill.trade_id} of order {tracked.client_order_id} ({fill.side.value} "
                           f"{fill.amount} {fill.symbol} @ {fill.price}) was not expected ("
                           f"{unexpected or 'the order was done'}); the exchange's record counts: position now "
                           f"{book.size}")  # fmt: skip
        else:
            if not tracked.acked:
                log.debug("fill %s of %s arrived before the REST acknowledgement; matched by client order id",
                          fill.trade_id, tracked.client_order_id)  # fmt: skip
            self._learn_order_id(tracked, fill.order_id)
            self._accept(tracked)
            self._execute(tracked, fill, book)
            self.journal.update_order(tracked.client_order_id, filled=tracked.executed)
        self._persist(book)
        self._hook(fill)
        self._progress(tracked)

    def _move_position(self, book: SymbolBook, fill: Fill,
                       tracked: Tracked | None = None) -> tuple[Decimal, Decimal, Decimal, Decimal]:  # fmt: skip
        """Apply a fill to the ledger: position (filled amounts), fees taken in the coin, cash."""
        old_price = book.price
        delta = self._ledger_delta(fill, tracked)
        book.size, book.price, opened, closed = apply_to_position(book.size, book.price, delta, fill.price)
        coin_fee = fill.fee if fill.fee and fill.fee_currency == book.base else ZERO
        closed_extra = -delta - fill.amount if delta < 0 else ZERO  # fee coins an adjusted exit closes
        book.coin_fees = book.coin_fees + coin_fee - closed_extra
        cash = fill.amount * fill.price
        self._add_cash(book.quote, -cash if fill.side is Side.BUY else cash)
        if not coin_fee:
            self._add_cash(book.quote, -self._fee_value(fill, book))
        if book.size <= 0 or book.coin_fees < 0:
            if book.size <= 0 and book.coin_fees:
                # Closed: what the position held beyond what the exit sold stays on the account
                # as dust; an exit that swept earlier dust along (it is this strategy's too) used it up.
                left = -book.coin_fees
                book.dust = max(book.dust + left, ZERO)
                if left > 0:
                    self.put_store(f"{book.symbol}: {left} {book.base} the lot step left on the account is dust "
                                   f"(below what can be sold), not a position; dust so far {book.dust}")  # fmt: skip
            # An exit still filling may have closed its fee coins (and the lot step's dust) ahead
            # of the coins it sells: they stay counted, below zero, so held is still the account's.
            book.coin_fees = book.coin_fees if book.size > 0 else ZERO
        if book.size > 0 and book.held <= 0:
            # Nothing of the position is left on the account (the rest went as fees): flat.
            book.size, book.price, book.coin_fees = ZERO, ZERO, ZERO
        book.sync()
        book.last_fill = time.monotonic()
        return opened, closed, old_price, delta

    def _execute(self, tracked: Tracked, fill: Fill, book: SymbolBook, *, historical: bool = False,
                 notify: bool = True) -> None:  # fmt: skip
        """Apply one fill to the backtrader order (and, unless historical, to the ledger).

        Historical fills (of a re-attached order, already in the ledger the journal kept) complete
        the order's execution record but move neither the position nor the strategy's trades.
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
            opened, closed, old_price, _ = self._move_position(book, fill, tracked)
            if closed:
                if book.size == 0 or abs(float(closed)) >= abs(book.trade_size):
                    # Close exactly what the strategy's Trade holds (its float sum), so the trade
                    # closes; what it does not hold was restored from the journal at start.
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
        # backtrader completes an order when its float remainder is exactly 0, which a float sum
        # of the exchange's amounts can miss (0.00999 - 0.004 - 0.004 - 0.00199 is -4e-19, and
        # the order would stay Partial for ever): the exact count decides.
        remaining = tracked.amount - tracked.executed
        order.executed.remsize = 0.0 if remaining <= 0 else float(remaining) if gross > 0 else -float(remaining)
        order.status = bt.Order.Completed if remaining <= 0 else bt.Order.Partial
        if tracked.executed >= tracked.amount:
            tracked.done = True
        if notify:
            self.broker.notify(order)
            self._after(order)

    # --- the ledger's state ------------------------------------------------------------------------

    def _persist(self, book: SymbolBook) -> None:
        """Write the ledger to the journal: what a restart starts from."""
        assert self.journal is not None
        with self.journal.batch():
            self.journal.set_position(book.symbol, book.size, book.price)
            self.journal.set_meta(f"ledger.coin_fees.{book.symbol}", str(book.coin_fees))
            self.journal.set_meta(f"ledger.dust.{book.symbol}", str(book.dust))
            self.journal.set_meta("ledger.cash", str(self.ledger_cash))
            for currency, amount in self.other_cash.items():
                self.journal.set_meta(f"ledger.cash.{currency}", str(amount))

    def check_ceiling(self) -> None:
        """The account is the ledger's ceiling: where it holds less than the ledger (coins or cash
        moved away by hand), the ledger shrinks to it and the strategy is told.

        Only balances the exchange reported after the ledger's last fill count: a balance heard
        before it (the stream lost what came after, a REST refresh asked earlier) is no ceiling.
        """
        busy = {t.symbol for t in self.active()}
        for symbol, book in self.books.items():
            fresh = self.balance_news.get(book.base, 0.0) > book.last_fill
            if symbol in busy or not fresh or book.size <= 0:
                continue
            free, locked = self.balances.get(book.base, (ZERO, ZERO))
            total = free + locked
            if total < book.held - self._lot_step(symbol):
                self.put_store(f"{symbol}: the account holds {total} {book.base}, less than this strategy's "
                               f"position {book.held}: the position shrinks to {total}")  # fmt: skip
                book.size, book.coin_fees = total, ZERO
                if not total:
                    book.price = ZERO
                book.trade_size = min(book.trade_size, float(total))
                book.sync()
                self._persist(book)
        last_fill = max((b.last_fill for b in self.books.values()), default=0.0)
        for quote in ([self.currency] if self.currency else []) + list(self.other_cash):
            if any(self.books[s].quote == quote for s in busy if s in self.books):
                continue
            if self.balance_news.get(quote, 0.0) <= last_fill:
                continue  # no word of the cash since the last fill
            free, locked = self.balances.get(quote, (ZERO, ZERO))
            total = free + locked
            mine = self.cash_in(quote)
            if quote in self.balances and total < mine - Decimal("1e-8"):
                self.put_store(f"the account holds {total} {quote}, less than this strategy's cash {mine}: "
                               f"its cash shrinks to {total}")  # fmt: skip
                self._set_cash(quote, total)
                key = "ledger.cash" if quote == self.currency else f"ledger.cash.{quote}"
                self.journal.set_meta(key, str(total))

    def _lot_step(self, symbol: str) -> Decimal:
        market = self.store.market(symbol)
        return dec((market.get("precision") or {}).get("amount")) or Decimal("1e-8")

    def cash(self) -> float:
        return float(self.ledger_cash)

    def value(self, datas: Iterable[Any] | None = None) -> float:
        if datas is not None:
            return sum(float(self.books[s].held) * self.last_price(self.books[s])
                       for s in {self.symbol_of(d) for d in datas} if s in self.books)  # fmt: skip
        total = float(self.ledger_cash)
        for currency, amount in self.other_cash.items():
            if amount:
                total += float(amount) * self._rate(currency)
        for book in self.books.values():
            if book.size or book.dust:
                # The dust exits left is this strategy's too: on the account, worth its price.
                total += float(book.held + book.dust) * self.last_price(book) * self._rate(book.quote)
        return total

    def position(self, data: Any) -> bt.Position:
        return self.book_for_data(data).position
