"""USDT-margined linear perpetuals in the matching engine: positions, margin, funding, liquidation.

A market whose :class:`~.model.MarketSpec` has ``contract=True`` trades a perpetual settled in its
quote asset (USDT) instead of exchanging base for quote. :class:`ContractBook` is mixed into the
:class:`~.engine.Engine`; matching (prices, triggers, maker/taker) is the engine's, what differs
is what a fill does to the account. The rules, fixed here:

- One-way position mode: one signed position per account and symbol (long above 0, short below).
  A fill on the other side first reduces the position, then opens the rest the other way.
- Leverage per account and symbol, 1 to ``max_leverage`` (``default_leverage`` until set);
  margin mode per account and symbol, cross (default) or isolated, which cannot change while a
  position or an order is open.
- Wallet. The quote asset's balance is the wallet: ``locked`` holds the initial margin of
  positions (``|size| * entry_price / leverage``, the isolated margin of an isolated position)
  and of open orders that would open or add to a position (``amount * price / leverage``, the
  last price for a market order); ``free`` is the rest. What a new order can use is ``free``
  plus the cross positions' unrealised loss (profits are not lent against). An order needing
  more is refused with INSUFFICIENT_MARGIN; the part of an order that only reduces the
  position needs no margin, and a reversal's new side uses what its closing part frees. Stop
  and take-profit orders hold nothing until they trigger and are cancelled then if the margin
  is not there.
- A fill's fee (the market's maker/taker rate on ``amount * price``) and the realised profit or
  loss of the part that reduced the position are paid into / out of ``free``; each is recorded
  as :class:`~.model.Income` (``COMMISSION``, ``REALIZED_PNL``). The entry price is the
  average of what opened the position; reducing leaves it, reversing starts it again.
- ``reduce_only`` orders are refused (REDUCE_ONLY_REJECTED) unless a position on the other
  side exists; they fill at most the position (the rest expires), and whatever reduce-only
  orders are still open when the position is closed expire.
- Mark price: the last price of the replayed path unless set by hand (:meth:`set_mark_price`,
  until set back to None); it is also the index price. Unrealised profit is
  ``size * (mark - entry)``.
- Funding every 8 hours at 00:00, 08:00 and 16:00 UTC of the emulated clock: each open position
  pays ``size * mark * rate`` (longs pay shorts when the rate is positive) to or from ``free``,
  recorded as ``FUNDING_FEE`` income. The rate is the spec's ``funding_rate`` until
  :meth:`set_funding_rate` changes it.
- Liquidation, checked at every path step and whenever the mark price is set: an isolated
  position whose margin plus unrealised profit falls to its maintenance margin
  (``|size| * mark * maintenance_margin_rate``), or every cross position of an account whose
  wallet (less isolated margins) plus cross unrealised profit falls to their maintenance
  margin. Open orders of the symbol are cancelled, the position is closed at the mark price by
  a market order with client id ``autoclose-<time>`` (the taker fee applies), and what margin is
  left of an isolated position (for a cross one, its maintenance margin) goes to the insurance
  fund. A wallet the loss would drive below zero is set to zero, the fund covering the rest;
  the net of the two is one ``INSURANCE_CLEAR`` income.
  Before that, a :class:`~.model.MarginCallEvent` is sent once when the maintenance margin
  reaches ``MARGIN_CALL_RATIO`` of the margin balance.
- The liquidation price shown is where that rule would fire for the position as it stands
  (``(size * entry - budget) / (size - |size| * rate)``, the budget being the isolated margin,
  or for cross the wallet less isolated margins plus the other cross positions' unrealised
  profit less their maintenance margin); 0 when no positive price would.

Events: every fill, funding payment, liquidation and leverage change emits a :class:`~.model.PositionEvent`
(after the fill's OrderEvent) with the changed position, the wallet balance and the income;
each path step of a contract market emits a :class:`~.model.MarkPriceEvent`.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import ROUND_DOWN, ROUND_UP, Decimal, InvalidOperation
from typing import Any

from .model import (
    EngineError,
    ExecutionType,
    Fill,
    Income,
    MarginCallEvent,
    MarketSpec,
    MarkPriceEvent,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    Position,
    PositionEvent,
    RejectReason,
    Side,
    TimeInForce,
)

__all__ = ["FUNDING_INTERVAL_MS", "MARGIN_CALL_RATIO", "ContractBook", "contract_market_spec", "next_funding_after"]

#: Funding is settled at 00:00, 08:00 and 16:00 UTC.
FUNDING_INTERVAL_MS = 8 * 3_600_000
#: A margin call goes out once maintenance margin / margin balance reaches this ratio.
MARGIN_CALL_RATIO = Decimal("0.8")

_ZERO = Decimal(0)
_Q8 = Decimal("1e-8")


def next_funding_after(time_ms: int) -> int:
    """The first funding time strictly after ``time_ms``."""
    return (time_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS


def contract_market_spec(spot: MarketSpec, fees: tuple[str, str] = ("0.0002", "0.0005")) -> MarketSpec:
    """The perpetual of a spot market's spec: the same filters, contract ``fees`` (maker, taker;
    by default 0.02 % and 0.05 %, Binance USDⓈ-M's base tier) and the contract defaults of
    :class:`MarketSpec`."""
    return replace(spot, contract=True, maker_fee=Decimal(fees[0]), taker_fee=Decimal(fees[1]))


def _up8(value: Decimal) -> Decimal:
    try:
        return value.quantize(_Q8, rounding=ROUND_UP)
    except InvalidOperation:
        return value


def _down8(value: Decimal) -> Decimal:
    try:
        return value.quantize(_Q8, rounding=ROUND_DOWN)
    except InvalidOperation:
        return value


class _Pos:
    """Mutable position state of one account in one contract market."""

    __slots__ = ("called", "entry", "margin", "realized", "size", "updated")

    def __init__(self) -> None:
        self.size = _ZERO
        self.entry = _ZERO
        self.margin = _ZERO  # of the wallet's locked part
        self.realized = _ZERO
        self.updated = 0
        self.called = False  # a margin call was sent and the position has not recovered since


class ContractBook:
    """The perpetual-contract half of the engine (mixed into :class:`~.engine.Engine`).

    It uses the engine's lock, accounts, markets and event emission; every public method here
    takes the lock as the engine's own do.
    """

    # Provided by the engine.
    _lock: Any
    _time: int
    _markets: dict[str, Any]

    def _init_contracts(self) -> None:
        self._contract_markets = [m for m in self._markets.values() if m.spec.contract]
        for m in self._contract_markets:
            m.mark_override = None
            m.funding_rate = m.spec.funding_rate
            m.holders = {}
            m.fundings = []
        self._income_ids = iter(range(1, 2**62))
        self._next_funding = next_funding_after(self._time)
        self._fill_reason = "order"

    # --- settings -----------------------------------------------------------------------------

    def _contract_market(self, symbol: str) -> Any:
        m = self._market(symbol)  # type: ignore[attr-defined]
        if not m.spec.contract:
            raise EngineError(RejectReason.UNKNOWN_SYMBOL, f"{symbol} is not a contract market")
        return m

    @staticmethod
    def _leverage_of(account: Any, m: Any) -> int:
        return account.leverage.get(m.symbol, m.spec.default_leverage)

    @staticmethod
    def _isolated(account: Any, m: Any) -> bool:
        return account.isolated.get(m.symbol, False)

    def leverage(self, api_key: str, symbol: str) -> int:
        with self._lock:
            return self._leverage_of(self._account(api_key), self._contract_market(symbol))  # type: ignore[attr-defined]

    def set_leverage(self, api_key: str, symbol: str, leverage: Any) -> int:
        """Set the account's leverage of ``symbol``; raises INVALID_LEVERAGE outside 1 to the
        market's maximum, INSUFFICIENT_MARGIN when an open position cannot carry the margin
        the lower leverage needs. Returns the leverage now in force."""
        with self._lock:
            self._sync()  # type: ignore[attr-defined]
            account = self._account(api_key)  # type: ignore[attr-defined]
            m = self._contract_market(symbol)
            try:
                value = int(leverage)
                if value != Decimal(str(leverage)):
                    raise ValueError
            except (TypeError, ValueError, InvalidOperation):
                raise EngineError(
                    RejectReason.INVALID_LEVERAGE, f"leverage {leverage!r} is not a whole number"
                ) from None
            if not 1 <= value <= m.spec.max_leverage:
                raise EngineError(
                    RejectReason.INVALID_LEVERAGE,
                    f"leverage {value} of {symbol} must be between 1 and {m.spec.max_leverage}",
                )
            pos = account.positions.get(m.symbol)
            if pos is not None and pos.size:
                margin = _up8(abs(pos.size) * pos.entry / value)
                bal = account.balance(m.spec.quote)
                delta = margin - pos.margin
                if delta > bal.free:
                    raise EngineError(
                        RejectReason.INSUFFICIENT_MARGIN,
                        f"leverage {value} needs {margin} {m.spec.quote} of margin for the position, "
                        f"{bal.free} more are not available",
                    )
                bal.free -= delta
                bal.locked += delta
                pos.margin = margin
            account.leverage[m.symbol] = value
            self._emit_position(account, m, "leverage", ())
            return value

    def margin_mode(self, api_key: str, symbol: str) -> str:
        with self._lock:
            return "isolated" if self._isolated(self._account(api_key), self._contract_market(symbol)) else "cross"  # type: ignore[attr-defined]

    def set_margin_mode(self, api_key: str, symbol: str, mode: str) -> None:
        """``"cross"`` or ``"isolated"``; raises NOT_MODIFIED when already so, POSITION_EXISTS /
        OPEN_ORDERS_EXIST while the symbol has a position / open orders."""
        with self._lock:
            self._sync()  # type: ignore[attr-defined]
            account = self._account(api_key)  # type: ignore[attr-defined]
            m = self._contract_market(symbol)
            wanted = str(mode).lower()
            if wanted not in ("cross", "isolated"):
                raise EngineError(
                    RejectReason.INVALID_PARAMETER, f"margin mode must be cross or isolated, got {mode!r}"
                )
            isolated = wanted == "isolated"
            if self._isolated(account, m) == isolated:
                raise EngineError(RejectReason.NOT_MODIFIED, f"the margin mode of {symbol} is already {wanted}")
            pos = account.positions.get(m.symbol)
            if pos is not None and pos.size:
                raise EngineError(RejectReason.POSITION_EXISTS, f"{symbol} has an open position")
            if any(w.account is account for w in m.open_orders.values()):
                raise EngineError(RejectReason.OPEN_ORDERS_EXIST, f"{symbol} has open orders")
            account.isolated[m.symbol] = isolated

    # --- mark price and funding ---------------------------------------------------------------

    @staticmethod
    def _mark(m: Any) -> Decimal:
        return m.mark_override if m.mark_override is not None else m.last

    def mark_price(self, symbol: str) -> Decimal:
        with self._lock:
            self._sync()  # type: ignore[attr-defined]
            return self._mark(self._contract_market(symbol))

    def set_mark_price(self, symbol: str, price: Any) -> None:
        """Hold the mark (and index) price of ``symbol`` at ``price`` (None: follow the last
        price again); positions are checked for liquidation at once."""
        with self._lock:
            self._sync()  # type: ignore[attr-defined]
            m = self._contract_market(symbol)
            if price is None:
                m.mark_override = None
            else:
                value = Decimal(str(price))
                if not value.is_finite() or value <= 0:
                    raise ValueError(f"mark price must be positive, got {price!r}")
                m.mark_override = value
            self._emit_mark(m, self._time)
            self._check_liquidation(m, self._time)

    def funding_rate(self, symbol: str) -> Decimal:
        with self._lock:
            return self._contract_market(symbol).funding_rate

    def set_funding_rate(self, symbol: str, rate: Any) -> None:
        """The rate the next funding settlements of ``symbol`` apply (e.g. ``"0.0001"``)."""
        with self._lock:
            value = Decimal(str(rate))
            if not value.is_finite() or abs(value) >= 1:
                raise ValueError(f"funding rate must be a fraction between -1 and 1, got {rate!r}")
            self._contract_market(symbol).funding_rate = value

    @property
    def next_funding_time(self) -> int:
        """When funding is next settled (epoch ms)."""
        with self._lock:
            return self._next_funding

    def funding_history(self, symbol: str) -> list[tuple[int, Decimal, Decimal]]:
        """``(time, rate, mark price)`` of every funding settled so far for ``symbol``."""
        with self._lock:
            self._sync()  # type: ignore[attr-defined]
            return list(self._contract_market(symbol).fundings)

    def _emit_mark(self, m: Any, t: int) -> None:
        if self._subscribers:  # type: ignore[attr-defined]
            mark = self._mark(m)
            self._emit(MarkPriceEvent(m.symbol, mark, mark, m.funding_rate, self._next_funding, t))  # type: ignore[attr-defined]

    def _settle_funding(self, t: int) -> None:
        """Funding time ``t``: every open position pays or receives ``size * mark * rate``."""
        for m in self._contract_markets:
            mark = self._mark(m)
            rate = m.funding_rate
            m.fundings.append((t, rate, mark))
            for account in list(m.holders.values()):
                pos = account.positions[m.symbol]
                if not pos.size:
                    continue
                payment = _down8(pos.size * mark * rate)
                bal = account.balance(m.spec.quote)
                bal.free -= payment
                income = self._income(account, m, "FUNDING_FEE", -payment, t, rate=rate)
                pos.updated = t
                self._emit_position(account, m, "funding_fee", (income,))

    def _income(self, account: Any, m: Any, kind: str, amount: Decimal, t: int, **extra: Any) -> Income:
        """Record a cash flow; called once the event's flows are all in the wallet."""
        wallet = account.balance(m.spec.quote)
        income = Income(next(self._income_ids), account.api_key, m.symbol, kind, amount, m.spec.quote, t, **extra,
                        balance=wallet.free + wallet.locked)  # fmt: skip
        account.incomes.append(income)
        return income

    def incomes(
        self,
        api_key: str,
        symbol: str | None = None,
        kind: str | None = None,
        *,
        start: int | None = None,
        end: int | None = None,
        limit: int = 1000,
    ) -> list[Income]:
        """The account's cash flows (funding, realised profit, commission, insurance clear),
        oldest first; the latest ``limit`` unless ``start`` is given."""
        with self._lock:
            self._sync()  # type: ignore[attr-defined]
            account = self._account(api_key)  # type: ignore[attr-defined]
            rows = [
                i
                for i in account.incomes
                if (symbol is None or i.symbol == symbol)
                and (kind is None or i.kind == kind)
                and (start is None or i.time >= start)
                and (end is None or i.time <= end)
            ]
            return self._window(rows, start, limit)  # type: ignore[attr-defined]

    # --- positions ----------------------------------------------------------------------------

    def _pos(self, account: Any, m: Any) -> _Pos:
        pos = account.positions.get(m.symbol)
        if pos is None:
            pos = account.positions[m.symbol] = _Pos()
        return pos

    def _cross(self, account: Any, exclude: str | None = None) -> tuple[Decimal, Decimal, Decimal]:
        """(wallet less isolated margins, cross unrealised profit, cross maintenance margin) of
        the account's positions settled in USDT, leaving out ``exclude``."""
        upnl = maint = isolated_margin = _ZERO
        settle = None
        for symbol, pos in account.positions.items():
            m = self._markets[symbol]
            settle = m.spec.quote
            if not pos.size:
                continue
            if self._isolated(account, m):
                isolated_margin += pos.margin
                continue
            if symbol == exclude:
                continue
            mark = self._mark(m)
            upnl += pos.size * (mark - pos.entry)
            maint += abs(pos.size) * mark * m.spec.maintenance_margin_rate
        if settle is None:
            return _ZERO, _ZERO, _ZERO
        bal = account.balance(settle)
        return bal.free + bal.locked - isolated_margin, upnl, maint

    def _snapshot(self, account: Any, m: Any, pos: _Pos) -> Position:
        mark = self._mark(m)
        rate = m.spec.maintenance_margin_rate
        isolated = self._isolated(account, m)
        size, entry = pos.size, pos.entry
        liquidation = _ZERO
        if size:
            if isolated:
                budget = pos.margin
            else:
                wallet, upnl, maint = self._cross(account, exclude=m.symbol)
                budget = wallet + upnl - maint
            denominator = size - abs(size) * rate
            price = (size * entry - budget) / denominator
            liquidation = _down8(price) if price > 0 else _ZERO
        return Position(
            account=account.api_key,
            symbol=m.symbol,
            size=size,
            entry_price=entry,
            mark_price=mark,
            unrealized_pnl=size * (mark - entry) if size else _ZERO,
            liquidation_price=liquidation,
            leverage=self._leverage_of(account, m),
            isolated=isolated,
            margin=pos.margin,
            maintenance_margin=_up8(abs(size) * mark * rate),
            realized_pnl=pos.realized,
            updated_time=pos.updated,
        )

    def position(self, api_key: str, symbol: str) -> Position:
        """The account's position in ``symbol`` now (size 0 when flat)."""
        with self._lock:
            self._sync()  # type: ignore[attr-defined]
            account = self._account(api_key)  # type: ignore[attr-defined]
            m = self._contract_market(symbol)
            return self._snapshot(account, m, account.positions.get(m.symbol) or _Pos())

    def positions(self, api_key: str, symbol: str | None = None) -> list[Position]:
        """The account's position in every contract market (flat ones with size 0), or in one."""
        with self._lock:
            self._sync()  # type: ignore[attr-defined]
            account = self._account(api_key)  # type: ignore[attr-defined]
            markets = [self._contract_market(symbol)] if symbol is not None else self._contract_markets
            return [self._snapshot(account, m, account.positions.get(m.symbol) or _Pos()) for m in markets]

    def available_margin(self, api_key: str, settle: str = "USDT") -> Decimal:
        """What a new order of the account may use: free wallet plus cross unrealised loss."""
        with self._lock:
            self._sync()  # type: ignore[attr-defined]
            return self._available(self._account(api_key), settle)  # type: ignore[attr-defined]

    def _available(self, account: Any, settle: str) -> Decimal:
        _, upnl, _ = self._cross(account)
        return account.balance(settle).free + min(upnl, _ZERO)

    def _emit_position(self, account: Any, m: Any, reason: str, income: tuple[Income, ...]) -> None:
        pos = account.positions.get(m.symbol) or _Pos()
        self._emit(  # type: ignore[attr-defined]
            PositionEvent(
                account.api_key,
                reason,
                (self._snapshot(account, m, pos),),
                account.snapshot((m.spec.quote,)),
                self._time,
                income,
            )
        )

    # --- orders -------------------------------------------------------------------------------

    def _contract_need(self, account: Any, m: Any, side: Side, amount: Decimal, ref: Decimal) -> Decimal:
        """Initial margin of the part of an order that would open or add to the position, less
        what the part that closes it frees: a reversal opens its new side with the margin of
        the position it closes (one-way mode nets the two, as the exchanges do)."""
        pos = account.positions.get(m.symbol)
        leverage = self._leverage_of(account, m)
        reducible = freed = _ZERO
        if pos is not None and pos.size and (pos.size > 0) != (side is Side.BUY):
            reducible = min(amount, abs(pos.size))
            freed = reducible * pos.entry / leverage
        return _up8(max(_ZERO, (amount - reducible) * ref / leverage - freed))

    def _place_contract(self, account: Any, m: Any, checked: tuple, reduce_only: bool) -> Order:
        side, order_type, tif, amount, price, stop_price, client_order_id, above = checked
        stop = order_type in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT)
        pos = account.positions.get(m.symbol)
        if reduce_only and (pos is None or not pos.size or (pos.size > 0) == (side is Side.BUY)):
            raise EngineError(
                RejectReason.REDUCE_ONLY_REJECTED,
                f"a reduce-only {side.value} order of {m.symbol} would not reduce the position",
            )
        settle = m.spec.quote
        need = _ZERO
        if not stop and not reduce_only:
            need = self._contract_need(account, m, side, amount, price if price is not None else m.last)
            available = self._available(account, settle)
            if need > available:
                raise EngineError(
                    RejectReason.INSUFFICIENT_MARGIN,
                    f"the order needs {need} {settle} of initial margin, {available} {settle} are available",
                )
        working = self._accept(account, m, side, order_type, tif, amount, price, stop_price, client_order_id,  # type: ignore[attr-defined]
                               above, settle, need)  # fmt: skip
        working.order = replace(working.order, reduce_only=reduce_only)
        working.lock_on_trigger = stop
        t = self._time
        self._emit(OrderEvent(working.order, ExecutionType.NEW, None, t))  # type: ignore[attr-defined]
        if need:
            self._emit_balance(account, settle, t)
        if order_type is OrderType.MARKET:
            self._take(working, m.last, t)  # type: ignore[attr-defined]
        elif order_type is OrderType.LIMIT:
            self._arrive_as_limit(working, m.last, t)  # type: ignore[attr-defined]
        return working.order

    def _emit_balance(self, account: Any, asset: str, t: int) -> None:
        from .model import BalanceEvent

        self._emit(BalanceEvent(account.api_key, account.snapshot((asset,)), t))  # type: ignore[attr-defined]

    def _contract_trigger_lock(self, working: Any, price: Decimal, t: int) -> bool:
        """A triggered contract stop takes its margin now; False when it cannot (cancelled)."""
        order = working.order
        working.lock_on_trigger = False
        if order.reduce_only:
            return True
        account, m = working.account, working.market
        ref = order.price if order.price is not None else price
        need = self._contract_need(account, m, order.side, order.remaining, ref)
        if need > self._available(account, m.spec.quote):
            self._finish(working, OrderStatus.CANCELED, ExecutionType.CANCELED, t)  # type: ignore[attr-defined]
            return False
        if need:
            bal = account.balance(m.spec.quote)
            bal.free -= need
            bal.locked += need
            working.locked, working.lock_asset = need, m.spec.quote
            self._emit_balance(account, m.spec.quote, t)
        return True

    def _fill_contract(self, working: Any, amount: Decimal, price: Decimal, maker: bool, t: int) -> bool:
        """Execute ``amount`` of a contract order at ``price``; False (nothing done) when the
        margin for the part that opens a position is not there."""
        order = working.order
        account, m = working.account, working.market
        spec = m.spec
        settle = spec.quote
        pos = self._pos(account, m)
        buy = order.side is Side.BUY
        reducible = _ZERO
        if pos.size and (pos.size > 0) != buy:
            reducible = min(amount, abs(pos.size))
        if order.reduce_only and not reducible:
            self._finish(working, OrderStatus.EXPIRED, ExecutionType.EXPIRED, t)  # type: ignore[attr-defined]
            return True
        remaining = order.remaining
        clipped = False
        if order.reduce_only:  # never more than the position: the rest expires
            clipped = amount > reducible
            amount = reducible
        opening = amount - reducible
        leverage = self._leverage_of(account, m)
        bal = account.balance(settle)
        done = amount >= remaining or clipped
        released = working.locked if amount >= remaining else _down8(working.locked * amount / remaining)
        new_margin = _up8(opening * price / leverage)
        fee = _down8(amount * price * (spec.maker_fee if maker else spec.taker_fee))
        realized = reducible * (price - pos.entry) * (1 if pos.size > 0 else -1) if reducible else _ZERO
        closed_margin = _ZERO
        if reducible:
            closed_margin = pos.margin if reducible == abs(pos.size) else _down8(pos.margin * reducible / abs(pos.size))
        if opening and bal.free + released + closed_margin + realized - fee < new_margin:
            return False
        # Order margin and the closed part's margin go back to free; profit, loss and fee settle.
        bal.locked -= released + closed_margin
        working.locked -= released
        pos.margin -= closed_margin
        bal.free += released + closed_margin + realized - fee
        if opening:
            bal.free -= new_margin
            bal.locked += new_margin
            pos.margin += new_margin
        size = pos.size + (amount if buy else -amount)
        if not size:
            pos.entry = _ZERO
        elif opening and reducible:  # reversed: the new position opened at this price
            pos.entry = price
        elif opening:
            held = abs(pos.size)
            pos.entry = _down8((held * pos.entry + opening * price) / (held + opening)) if held else price
        pos.size = size
        pos.realized += realized
        pos.updated = t
        if size:
            m.holders[account.api_key] = account
        else:
            m.holders.pop(account.api_key, None)
        income = []
        trade_id = next(self._trade_ids)  # type: ignore[attr-defined]
        if reducible:
            income.append(self._income(account, m, "REALIZED_PNL", realized, t, trade_id=trade_id))
        if fee:
            income.append(self._income(account, m, "COMMISSION", -fee, t, trade_id=trade_id))
        filled = order.filled + amount
        if done and working.locked:
            bal.locked -= working.locked
            bal.free += working.locked
            working.locked = _ZERO
        fill = Fill(
            trade_id=trade_id,
            order_id=order.order_id,
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            price=price,
            amount=amount,
            quote_amount=amount * price,
            fee=fee,
            fee_asset=settle,
            is_maker=maker,
            time=t,
            realized_pnl=realized,
        )
        status = OrderStatus.FILLED if filled >= order.amount else OrderStatus.PARTIALLY_FILLED
        if done and status is OrderStatus.PARTIALLY_FILLED:
            status = OrderStatus.EXPIRED  # a reduce-only order larger than the position it closed
        working.order = replace(
            order,
            status=status,
            filled=filled,
            cost=order.cost + amount * price,
            fee=order.fee + fee,
            fee_asset=settle,
            updated_time=t,
            fills=(*order.fills, fill),
        )
        account.fills.append(fill)
        if done:
            self._unlist(working)  # type: ignore[attr-defined]
        self._emit(OrderEvent(working.order, ExecutionType.TRADE, fill, t))  # type: ignore[attr-defined]
        self._emit_position(account, m, self._fill_reason, tuple(income))
        if not size:
            # Reduce-only orders have nothing left to reduce.
            for other in list(m.open_orders.values()):
                if other.account is account and other.order.reduce_only and other.order.status.is_open:
                    self._finish(other, OrderStatus.EXPIRED, ExecutionType.EXPIRED, t)  # type: ignore[attr-defined]
        return True

    # --- liquidation --------------------------------------------------------------------------

    def _check_liquidation(self, m: Any, t: int) -> None:
        """After a price move of ``m``: liquidate what has run out of margin, warn what is close."""
        if not m.holders:
            return
        mark = self._mark(m)
        rate = m.spec.maintenance_margin_rate
        for account in list(m.holders.values()):
            pos = account.positions.get(m.symbol)
            if pos is None or not pos.size:
                continue
            if self._isolated(account, m):
                equity = pos.margin + pos.size * (mark - pos.entry)
                maint = abs(pos.size) * mark * rate
                victims = [m]
            else:
                wallet, upnl, maint = self._cross(account)
                equity = wallet + upnl
                victims = [
                    self._markets[s]
                    for s, p in account.positions.items()
                    if p.size and not self._isolated(account, self._markets[s])
                ]
            if equity <= maint:
                for victim in victims:
                    self._liquidate(account, victim, t)
            elif maint >= MARGIN_CALL_RATIO * equity:
                if not pos.called:
                    pos.called = True
                    self._emit(  # type: ignore[attr-defined]
                        MarginCallEvent(
                            account.api_key,
                            tuple(self._snapshot(account, v, v_pos) for v in victims
                                  if (v_pos := account.positions.get(v.symbol)) is not None),
                            account.snapshot((m.spec.quote,)),
                            t,
                        )
                    )  # fmt: skip
            else:
                pos.called = False

    def _liquidate(self, account: Any, m: Any, t: int) -> None:
        pos = account.positions.get(m.symbol)
        if pos is None or not pos.size:
            return
        for working in list(m.open_orders.values()):
            if working.account is account and working.order.status.is_open:
                self._finish(working, OrderStatus.CANCELED, ExecutionType.CANCELED, t)  # type: ignore[attr-defined]
        mark = self._mark(m)
        isolated = self._isolated(account, m)
        side = Side.SELL if pos.size > 0 else Side.BUY
        amount = abs(pos.size)
        maint = _up8(amount * mark * m.spec.maintenance_margin_rate)
        margin_before = pos.margin
        client_id = f"autoclose-{t}"
        while client_id in account.open_by_client:
            client_id += "x"
        working = self._accept(account, m, side, OrderType.MARKET, TimeInForce.IOC, amount, None, None,  # type: ignore[attr-defined]
                               client_id, side is Side.BUY, m.spec.quote, _ZERO)  # fmt: skip
        working.order = replace(working.order, reduce_only=True)
        self._emit(OrderEvent(working.order, ExecutionType.NEW, None, t))  # type: ignore[attr-defined]
        self._fill_reason = "liquidation"
        try:
            self._fill_contract(working, amount, mark, False, t)
        finally:
            self._fill_reason = "order"
        bal = account.balance(m.spec.quote)
        fill = working.order.fills[-1] if working.order.fills else None
        left = margin_before + (fill.realized_pnl - fill.fee if fill is not None else _ZERO)
        clearance = max(left, _ZERO) if isolated else maint
        clearance = min(clearance, max(bal.free, _ZERO))
        bal.free -= clearance
        written_off = -bal.free if bal.free < 0 else _ZERO
        if written_off:
            bal.free = _ZERO
        amount_cleared = -clearance + written_off
        if amount_cleared:
            income = self._income(account, m, "INSURANCE_CLEAR", amount_cleared, t)
            self._emit_position(account, m, "liquidation", (income,))

    # --- replay hook --------------------------------------------------------------------------

    def _contract_step(self, m: Any, t: int) -> None:
        """After a path step of contract market ``m``."""
        self._emit_mark(m, t)
        self._check_liquidation(m, t)
