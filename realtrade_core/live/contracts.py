"""Perpetual contracts in the live session: the account set up at start, the strategy's ledger of
long and short positions, the exchange's positions as its ceiling, and funding.

A perpetual store's live broker is a :class:`PerpetualSession`: the spot session's machinery
(orders, fills, journal, reconciliation, lockstep) with the ledger of a margin account:

- **At start**, before any order: the account must be in one-way position mode (a hedge-mode
  account is refused, saying how to switch); each traded contract gets the broker's
  ``margin_mode`` and ``leverage`` through ccxt (a setting already in place is fine).
- **Positions** are signed: ``sell()`` without a position opens a short. An order that only
  reduces the position goes with ``reduceOnly``; one that reverses it (``sell(2)`` while long
  1) goes as one plain order, as a backtest fills it. An order that opens or adds must be
  margined by the ledger's free cash at the leverage (else Margin, before anything is sent).
- **Cash** is the ledger's wallet: its capital, plus realised profit, less fees, plus funding.
  ``getcash()`` is the wallet less the margin in use (``|size| x entry / leverage``) plus the
  unrealised profit at the last close; ``getvalue()`` the wallet plus unrealised profit: the
  paper broker's definitions.
- **The exchange is the ceiling**: where its position in a contract is smaller than the
  ledger's (or on the other side), the ledger shrinks to it, the part taken away closed at the
  price of the exchange's order that took it (a liquidation, a close by hand; else the last
  close), and ``notify_store`` says so; a strategy never closes what it did not open.
- **Orders**: market, limit, stop and stop-limit (trailing ones too), ``oco=`` groups and
  brackets (their exits ``"held"`` by default: the take-profit rests, the broker holds the
  stop), stops through the dialect's contract rules (conditional orders).
- **Funding** payments from the private stream move the ledger's cash (its share, when the
  account's position is larger) and reach the strategy through ``notify_store`` as paper's do,
  each listed in ``broker.funding_payments``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..errors import ConfigurationError
from ..events import Fill, FundingFee, PositionUpdate, Side
from .ledger import apply_to_position
from .model import ZERO, SymbolBook, _Reject, dec
from .session import LiveSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExchangePosition:
    """The account's position in one contract as the exchange reports it (``broker.exchange_position``).

    ``size`` is signed (negative: short; 0: flat); prices and profit in the settle currency;
    None where the exchange gives nothing (a flat position has no entry or liquidation price).
    """

    symbol: str
    size: float
    entry_price: float | None
    unrealized_pnl: float | None
    liquidation_price: float | None
    mark_price: float | None
    leverage: float | None
    margin_mode: str | None


def _number(value: Any) -> float | None:
    number = dec(value)
    return float(number) if number is not None else None


def position_from_ccxt(symbol: str, positions: list[dict[str, Any]]) -> ExchangePosition:
    """The one-way position of ``symbol`` among ccxt's ``fetch_positions`` records (flat if none)."""
    for p in positions or ():
        if p.get("symbol") != symbol:
            continue
        contracts = dec(p.get("contracts")) or ZERO
        size = -contracts if p.get("side") == "short" else contracts
        return ExchangePosition(
            symbol, float(size), _number(p.get("entryPrice")) if size else None,
            _number(p.get("unrealizedPnl")), _number(p.get("liquidationPrice")) if size else None,
            _number(p.get("markPrice")), _number(p.get("leverage")), p.get("marginMode"),
        )  # fmt: skip
    return ExchangePosition(symbol, 0.0, None, None, None, None, None, None)


#: Seconds within which the exchange's closing order, heard after the position it took, still
#: settles the price that position was closed at (the stream sends both within milliseconds).
PROVISIONAL_WINDOW = 10.0


class PerpetualSession(LiveSession):
    """The live session of a perpetual store (see the module doc)."""

    def __init__(self, broker: Any) -> None:
        super().__init__(broker)
        self.exchange_sizes: dict[str, tuple[Decimal, float]] = {}  # symbol -> (size, monotonic time heard)
        self._contract_sizes: dict[str, Decimal] = {}
        #: symbol -> (size closed, price used): a shrink booked at the last close, before the
        #: exchange's closing order was heard
        self.provisional_closes: dict[str, tuple[Decimal, Decimal, float]] = {}
        self.closing_prices: dict[str, Decimal] = {}  # symbol -> price of the last fill of another's order

    # --- the account, at start ------------------------------------------------------------------

    @property
    def leverage(self) -> Decimal:
        return dec(self.broker.p.leverage) or Decimal(1)

    def prepare_account(self) -> None:
        """One-way mode, then each contract's margin mode and leverage, before any order."""
        assert self.io is not None
        io, client = self.io, self.io.client
        leverage = float(self.broker.p.leverage)
        leverage = int(leverage) if leverage == int(leverage) else leverage
        mode = str(self.broker.p.margin_mode)
        for symbol in sorted(self.books):
            self._contract_size(symbol)  # kept for after the store stops
            if self._hedged(symbol):
                raise ConfigurationError(
                    f"the {self.store.exchange} account trades {symbol} in hedge (dual-side) position mode; realtrade "
                    f"trades perpetuals in one-way mode only: {io.dialect.one_way_help}, then start again"
                )
            self._setting(client.set_margin_mode, mode, symbol, what=f"margin mode {mode!r}")
            self._setting(client.set_leverage, leverage, symbol, what=f"leverage {leverage}x")
            log.info("%s: %s in one-way mode, %s margin, %sx leverage", self.store.exchange, symbol, mode, leverage)

    def _hedged(self, symbol: str) -> bool:
        """Whether the account is in hedge mode for ``symbol``: ccxt's ``fetch_position_mode``
        where the exchange has it, else the positions' own ``hedged``."""
        io, client = self.io, self.io.client  # type: ignore[union-attr]
        if (getattr(client, "has", {}) or {}).get("fetchPositionMode"):
            return bool((io.read(client.fetch_position_mode, symbol) or {}).get("hedged"))
        return any(p.get("hedged") for p in io.read(client.fetch_positions, [symbol]) or ())

    def _setting(self, call: Any, value: Any, symbol: str, *, what: str) -> None:
        import ccxt

        try:
            self.io.read(call, value, symbol)  # type: ignore[union-attr]
        except ccxt.BaseError as exc:
            if self.io.dialect.setting_unchanged(exc):  # type: ignore[union-attr]
                return  # already so
            raise ConfigurationError(
                f"{self.store.exchange} refused {what} for {symbol}: {self.io.scrub(exc)[:300]}; nothing was traded. "  # type: ignore[union-attr]
                f"Choose a setting the contract allows (a margin mode cannot change while a position or order is open)"
            ) from exc

    # --- what the exchange says ---------------------------------------------------------------

    def exchange_position(self, symbol: str) -> ExchangePosition:
        """The account's position in ``symbol`` now, over REST (ccxt ``fetch_positions``)."""
        assert self.io is not None
        return position_from_ccxt(symbol, self.io.read(self.io.client.fetch_positions, [symbol]))

    def apply(self, item: Any) -> None:
        if isinstance(item, PositionUpdate):
            self.exchange_sizes[item.symbol] = (item.size, time.monotonic())
            self.check_ceiling()
        elif isinstance(item, FundingFee):
            self.apply_funding(item)
        else:
            super().apply(item)

    # --- the ledger -----------------------------------------------------------------------------

    def _contract_size(self, symbol: str) -> Decimal:
        """Coins per contract, kept once read: the ledger's value is asked after the store
        has stopped too (backtrader's writers, the run's report), when its markets are gone."""
        size = self._contract_sizes.get(symbol)
        if size is None:
            size = self._contract_sizes[symbol] = dec(self.store.market(symbol).get("contractSize")) or Decimal(1)
        return size

    def _move_position(self, book: SymbolBook, fill: Fill,
                       tracked: Any = None) -> tuple[Decimal, Decimal, Decimal, Decimal]:  # fmt: skip
        """A fill moves the signed position; what it closes realises profit into the wallet,
        and its fee (in the settle currency) comes out of it."""
        old_price = book.price
        delta = fill.amount if fill.side is Side.BUY else -fill.amount
        book.size, book.price, opened, closed = apply_to_position(book.size, book.price, delta, fill.price)
        profit = -closed * (fill.price - old_price) * self._contract_size(book.symbol) if closed else ZERO
        self._add_cash(book.quote, profit - self._fee_value(fill, book))
        book.sync()
        book.last_fill = time.monotonic()
        return opened, closed, old_price, delta

    def _margin(self, book: SymbolBook) -> Decimal:
        return abs(book.size) * book.price * self._contract_size(book.symbol) / self.leverage

    def _unrealised(self, book: SymbolBook) -> Decimal:
        if not book.size:
            return ZERO
        last = dec(self.last_price(book)) or book.price
        return book.size * (last - book.price) * self._contract_size(book.symbol)

    def cash(self) -> float:
        books = self.books.values()
        return float(self.ledger_cash - sum((self._margin(b) for b in books), ZERO)
                     + sum((self._unrealised(b) for b in books), ZERO))  # fmt: skip

    def value(self, datas: Any = None) -> float:
        if datas is not None:
            chosen = [self.books[s] for s in {self.symbol_of(d) for d in datas} if s in self.books]
            return float(sum((self._margin(b) + self._unrealised(b) for b in chosen), ZERO))
        return float(self.ledger_cash + sum((self._unrealised(b) for b in self.books.values()), ZERO))

    def _in_flight(self, symbol: str, side: str) -> Decimal:
        """What the strategy's open plain orders on ``side`` will still trade (bracket exits and
        OCO members are alternatives to each other and do not count)."""
        open_orders = [t for t in self.orders.open() if not t.cancelling]
        mine = [t for t in open_orders if t.symbol == symbol and t.side == side and not self._grouped(t.order)]
        return sum((t.amount - t.executed for t in mine), ZERO)

    def _fit_to_ledger(self, order: Any, book: SymbolBook, amount: Decimal,
                       reference: Decimal) -> tuple[Decimal, Decimal | None]:  # fmt: skip
        """An order that only reduces the strategy's position goes ``reduceOnly``; what opens
        (or reverses into) a position must be margined by the ledger's free cash."""
        side = "sell" if order.issell() else "buy"
        reduces = (book.size > 0) if side == "sell" else (book.size < 0)
        left = ZERO
        if reduces:
            others = ZERO if self._grouped(order) else self._in_flight(book.symbol, side)
            left = max(abs(book.size) - others, ZERO)
        closing = min(amount, left)
        opening = amount - closing
        if opening > 0 and reference > 0:
            size = self._contract_size(book.symbol)
            value = opening * reference * size
            needed = value / self.leverage + value * (dec(self.store.market(book.symbol).get("taker")) or ZERO)
            # A reversal first closes the position: the margin it held is free again.
            free = (dec(self.cash()) or ZERO) + closing * book.price * size / self.leverage
            if needed > free:
                raise _Reject(f"this strategy's free cash {free:.8f} {book.quote} cannot margin {opening} "
                              f"{book.symbol} at {reference} and {self.leverage}x ({needed:.8f} {book.quote} with "
                              f"the fee)", margin=True)  # fmt: skip
        order.addinfo(reduce_only=opening == 0)
        return amount, None

    # --- the exchange as the ceiling -------------------------------------------------------------

    def check_ceiling(self) -> None:
        """Where the exchange's position (heard after the ledger's last fill, with no order of
        the contract open) is smaller than the ledger's, or on the other side, the ledger
        shrinks to it."""
        busy = {t.symbol for t in self.active()}
        for symbol, book in self.books.items():
            heard = self.exchange_sizes.get(symbol)
            if heard is None or symbol in busy or heard[1] <= book.last_fill or not book.size:
                continue
            self._cap(book, heard[0])

    def apply_fill(self, fill: Fill, source: str) -> None:
        if self._find(fill.client_order_id, fill.order_id, fill.symbol) is None and fill.symbol in self.books:
            # Not this strategy's order (a liquidation, a close by hand): if it takes the ledger's
            # position, what it takes is closed at this price; if the position came first and
            # was closed at the last close, the difference is booked now.
            provisional = self.provisional_closes.pop(fill.symbol, None)
            if provisional is None or time.monotonic() - provisional[2] > PROVISIONAL_WINDOW:
                self.closing_prices[fill.symbol] = fill.price
            else:
                book = self.books[fill.symbol]
                closed, used, _ = provisional
                correction = closed * (fill.price - used) * self._contract_size(fill.symbol)
                self._add_cash(book.quote, correction)
                self._persist(book)
                self.put_store(f"{fill.symbol}: the exchange closed the position at {fill.price}, not {used}: "
                               f"{correction:+f} {book.quote} to this strategy's cash")  # fmt: skip
        super().apply_fill(fill, source)

    def _cap(self, book: SymbolBook, exchange: Decimal) -> None:
        """Shrink the ledger's position to the exchange's: the part taken away is closed at the
        price of the exchange's order that took it (else the last close), its profit or loss
        realised in the ledger's cash."""
        same_side = exchange != 0 and (exchange > 0) == (book.size > 0)
        if same_side and abs(exchange) >= abs(book.size):
            return
        capped = exchange if same_side else ZERO
        price = self.closing_prices.pop(book.symbol, None)
        if price is None:  # the exchange's closing order is not heard yet: the last close, for now
            price = dec(self.last_price(book)) or book.price
            self.provisional_closes[book.symbol] = (book.size - capped, price, time.monotonic())
        profit = (book.size - capped) * (price - book.price) * self._contract_size(book.symbol)
        self._add_cash(book.quote, profit)
        self.put_store(f"{book.symbol}: the exchange's position is {exchange}, this strategy's {book.size}: "
                       f"its position shrinks to {capped}, the rest closed at {price} ({profit:+f} "
                       f"{book.quote})")  # fmt: skip
        book.size = capped
        if not capped:
            book.price = ZERO
        book.trade_size = float(capped) if abs(book.trade_size) > abs(float(capped)) else book.trade_size
        book.sync()
        self._persist(book)

    def load_position(self, book: SymbolBook) -> None:
        """The ledger's position as its journal left it (a new ledger: flat, or with
        ``adopt_holdings=True`` the exchange's position), checked against the exchange's."""
        assert self.journal is not None
        book.size = book.price = book.coin_fees = ZERO
        known = None if self.new_ledger else self.journal.position(book.symbol)
        exchange = self.exchange_position(book.symbol)
        if known is not None and known[0]:
            book.size, book.price = known
        elif self.new_ledger and self.broker.p.adopt_holdings and exchange.size:
            book.size, book.price = dec(exchange.size) or ZERO, dec(exchange.entry_price) or ZERO
            self.put_store(f"{book.symbol}: adopted the account's position of {book.size} at {book.price} as this "
                           f"strategy's")  # fmt: skip
        book.trade_size = 0.0
        if book.size:
            self._cap(book, dec(exchange.size) or ZERO)
            self.provisional_closes.pop(book.symbol, None)  # closed while down: its price is not known
        book.sync()
        self._persist(book)

    # --- funding ----------------------------------------------------------------------------------

    def apply_funding(self, fee: FundingFee) -> None:
        """A funding payment on the account's position: the ledger's share of it (all of it when
        the account's position is the strategy's) into its cash, reported as paper reports it."""
        from ..perpetual import FundingPayment

        assert self.journal is not None
        book = self.books.get(fee.symbol)
        key = f"funding.{fee.payment_id}"
        if book is None or not book.size or self.journal.get_meta(key) is not None:
            return  # not this strategy's position, or applied already
        share = Decimal(1)
        if fee.position_size:
            share = min(Decimal(1), abs(book.size) / abs(fee.position_size))
        amount = fee.amount * share
        self._add_cash(fee.asset, amount)
        with self.journal.batch():  # the payment's record and the ledger it moves: one commit
            self.journal.set_meta(key, str(amount))
            self._persist(book)
        rate = fee.rate if fee.rate is not None else self._funding_rate(fee.symbol, fee.time)
        mark = fee.mark_price
        if mark is None and rate:
            mark = abs(amount) / (abs(book.size) * abs(rate) * self._contract_size(book.symbol))
        payment = FundingPayment(fee.time, fee.symbol, float(book.size), float(mark or 0), float(rate or 0),
                                 float(amount))  # fmt: skip
        self.broker.funding_payments.append(payment)
        self.broker.on_funding(book.data, payment)

    def _funding_rate(self, symbol: str, when: int) -> Decimal | None:
        """The rate of the funding settled at ``when`` (the payment's time, at or a moment after
        the funding time), from the exchange's funding history: the stream of some exchanges
        reports the payment without it."""
        try:
            rows = self.io.read(self.io.client.fetch_funding_rate_history, symbol, when - 60_000, 5)  # type: ignore[union-attr]
        except Exception as exc:
            log.warning("%s: no funding rate for %s at %s (%s)", self.store.exchange, symbol, when, exc)
            return None
        settled = [r for r in rows or () if r.get("timestamp") is not None and r["timestamp"] <= when]
        return dec(max(settled, key=lambda r: r["timestamp"]).get("fundingRate")) if settled else None
