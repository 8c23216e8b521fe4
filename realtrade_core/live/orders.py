"""Order state: submit, prepare, cancel, validity, and the exchange's answers and updates."""

from __future__ import annotations

import json
import logging
import math
import time
from decimal import Decimal

import backtrader as bt

from ..events import OrderStatus, OrderUpdate
from ..journal import SUBMITTING, JournalOrder
from .messages import Ack, CancelRequest, CreateRequest, SubmitFailed
from .model import BT_TO_TYPE, STOP_LIMITS, ZERO, SymbolBook, Tracked, _Reject, dec, next_bar_time

log = logging.getLogger(__name__)


class OrdersMixin:
    """The order path of :class:`~realtrade_core.live.session.LiveSession` (cerebro's thread)."""

    def submit(self, order: bt.Order) -> bt.Order:
        """Validate, round, journal and queue an order; problems become a Rejected order."""
        if order.parent is not None or not order.transmit:
            return self._submit_bracket_member(order)
        return self._send(order)

    def discard_untransmitted(self, order: bt.Order) -> None:
        """A bracket member vetoed before reaching the session: the rest of its bracket goes too."""
        pref = order.parent.ref if order.parent is not None else order.ref
        group = self.untransmitted.pop(pref, None)
        if group is None:
            return
        for member in group:
            if member is not order and member.status != bt.Order.Rejected:
                self._reject_now(member, f"bracket member {order.ref} was rejected: {order.info.get('reject_reason')}")

    def _send(self, order: bt.Order, *, held: bool = False, as_type: str | None = None) -> bt.Order:
        """Journal and queue one order; a ``held`` bracket child is already Accepted."""
        assert self.journal is not None
        with self.journal.batch():  # the order and what a restart needs of it: one commit
            request = self._prepare(order, held=held, as_type=as_type)
        if request is not None:
            assert self.sender is not None
            self.sender.put(request)
        return order

    def _prepare(self, order: bt.Order, *, held: bool, as_type: str | None) -> CreateRequest | None:
        """Check, round, journal and track one order; its request, or None when it is not to
        be sent (rejected with its reason, or expired before a bar could fill it)."""
        reason = "the live broker has stopped" if self.stopping.is_set() else self._unsupported(order)
        assert self.journal is not None and self.sender is not None
        margin = False
        if reason is None:
            try:
                request, closes = self._request(order, as_type)
                self.journal.record_order(JournalOrder(
                    client_order_id=request.client_order_id, order_id=None, symbol=request.symbol,
                    side=request.side, type=request.type, amount=request.amount, price=request.price,
                    stop_price=request.stop_price, status=SUBMITTING, created_ms=request.created_ms,
                ))  # fmt: skip
            except _Reject as exc:
                reason, margin = str(exc), exc.margin
            except ValueError as exc:  # the journal already has this client order id
                reason = f"{exc}: every order needs a new client order id"
            except Exception as exc:  # never an exception into the strategy: a Rejected order
                log.exception("live broker: could not prepare an order")
                reason = f"could not prepare the order: {type(exc).__name__}: {exc}"
        if reason is not None:
            self._reject_now(order, reason, margin=margin)
            self._after(order)
            return None
        if not held:
            order.submit(self.broker)
            order.addcomminfo(self.broker.getcommissioninfo(order.data))
        self.orders[request.client_order_id] = Tracked(
            order, request.client_order_id, request.symbol, request.side, request.type, request.amount,
            request.price, request.stop_price, request.created_ms, held=held, closes=closes,
        )  # fmt: skip
        if closes is not None:
            self.journal.set_meta(f"closes.{request.client_order_id}", str(closes))
        if order.valid:  # a restart re-attaches it with its validity
            self.journal.set_meta(f"valid.{request.client_order_id}", repr(float(order.valid)))
        if order.exectype in (bt.Order.StopTrail, bt.Order.StopTrailLimit):  # ... and a trailing stop its trail
            trail = {"amount": order.trailamount or 0.0, "percent": order.trailpercent or 0.0}
            self.journal.set_meta(f"trail.{request.client_order_id}", json.dumps(trail))
        if order.valid:
            self.timed[request.client_order_id] = self.orders[request.client_order_id]
        if not held:
            self.broker.notify(order)
        self.cid_by_ref[order.ref] = request.client_order_id
        leader = self.broker._ocos.get(order.ref, order.ref)
        if leader != order.ref and leader in self.cid_by_ref:
            group = self.cid_by_ref[leader]
            first = self.orders.get(group)
            if first is not None and group not in self.linked:
                self._link(first.order, group, "oco", "done" if first.done else "sent")
            self._link(order, group, "oco", "sent")
        expires = self._expiry(order, request.type)
        if expires is not None:
            # BackBroker would expire it before the next bar could fill it: it never goes out
            # (the next pass of next() ends it Expired, once its bracket or OCO group is set up).
            tracked = self.orders[request.client_order_id]
            tracked.expiring, tracked.unsent = expires, True
            self.journal.update_order(request.client_order_id, status="expired",
                                      reason="valid ended before a bar could fill it: not sent")  # fmt: skip
            return None
        return request

    def _unsupported(self, order: bt.Order) -> str | None:
        if order.exectype not in BT_TO_TYPE:
            return (f"{order.getordername()} orders are not supported in live mode; use Market, Limit, Stop, "
                    f"StopLimit, StopTrail or StopTrailLimit")  # fmt: skip
        if order.data is None or not hasattr(order.data, "p"):
            return "the order has no data feed"
        return None

    def _request(self, order: bt.Order, as_type: str | None = None) -> tuple[CreateRequest, Decimal | None]:
        """The exchange request for ``order`` (rounded and checked) and, for an exit sent short by
        the fees taken in the coin, what it closes in the ledger."""
        import ccxt

        data = order.data
        book = self.book_for_data(data)
        symbol = book.symbol
        market = self.store.market(symbol)
        client = self.store.client
        kind = as_type or BT_TO_TYPE[order.exectype]
        trigger_above = None
        try:
            amount = Decimal(client.amount_to_precision(symbol, abs(float(order.created.size))))
        except ccxt.BaseError as exc:
            raise _Reject(f"size {abs(order.created.size)} is below {symbol}'s amount precision "
                          f"({market.get('precision', {}).get('amount')}): {exc}") from None  # fmt: skip
        if amount <= 0:
            raise _Reject(f"size {abs(order.created.size)} rounds to 0 at {symbol}'s amount precision")
        limits = market.get("limits") or {}
        min_amount = dec((limits.get("amount") or {}).get("min"))
        max_amount = dec((limits.get("amount") or {}).get("max"))
        if min_amount is not None and amount < min_amount:
            raise _Reject(f"amount {amount} is below {symbol}'s minimum order amount {min_amount}")
        if max_amount is not None and max_amount > 0 and amount > max_amount:
            raise _Reject(f"amount {amount} is above {symbol}'s maximum order amount {max_amount}")

        def price_of(value: float | None, what: str) -> Decimal:
            if value is None or not value or math.isnan(value):
                raise _Reject(f"a {kind} order needs a {what}")
            try:
                return Decimal(client.price_to_precision(symbol, float(value)))
            except ccxt.BaseError as exc:
                raise _Reject(f"{what} {value} is invalid for {symbol}: {exc}") from None

        price = stop = None
        if kind == "limit":
            limit = order.created.pricelimit if order.exectype in STOP_LIMITS else order.created.price
            price = price_of(limit, "limit price")
        elif kind == "stop":
            stop = price_of(order.created.price, "stop price")
        elif kind == "stop_limit":
            stop = price_of(order.created.price, "stop price")
            price = price_of(order.created.pricelimit, "limit price")
        elif kind == "take_profit":
            # A limit exit as a conditional limit order at its price, firing when the market
            # reaches it (a sell from below, a buy from above): it holds no funds until then.
            kind = "stop_limit"
            stop = price = price_of(order.created.price, "limit price")
            trigger_above = order.issell()
        reference = price or stop or dec(self.last_price(book)) or ZERO
        amount, closes = self._fit_to_ledger(order, book, amount, reference)
        min_cost = dec((limits.get("cost") or {}).get("min"))
        if min_cost is not None and reference > 0 and amount * reference < min_cost:
            raise _Reject(f"order value {(amount * reference).normalize():f} {market['quote']} is below {symbol}'s "
                          f"minimum notional {min_cost} {market['quote']}")  # fmt: skip
        # The order must complete at the amount the exchange will really fill.
        signed = float(amount) if order.isbuy() else -float(amount)
        order.size = signed
        order.created.size = signed
        order.executed.remsize = signed
        cid = order.info.get("client_order_id") or self.broker.new_client_order_id()
        order.addinfo(client_order_id=cid)
        # Stamped on the exchange's clock: lookups of the order and its fills ask "since" this.
        request = CreateRequest(cid, symbol, "buy" if order.isbuy() else "sell", kind, amount, price, stop,
                                self.io.exchange_ms(), trigger_above, bool(order.info.get("reduce_only")))  # fmt: skip
        return request, closes

    def _grouped(self, order: bt.Order) -> bool:
        """Whether ``order`` is one of several alternatives: a bracket's exit, or in an OCO group."""
        if order.parent is not None:
            return True
        ocos, ocol = self.broker._ocos, self.broker._ocol
        return len(ocol.get(ocos.get(order.ref, order.ref), ())) > 1

    def _selling(self, symbol: str) -> Decimal:
        """What the strategy's open plain sells of ``symbol`` will still sell of its position
        (in the ledger's terms). Bracket exits and OCO members are alternatives to each other,
        and an order whose cancel is on its way sells no more: neither counts."""
        total = ZERO
        for t in self.orders.open():
            if t.done or t.cancelling or t.symbol != symbol or t.side != "sell" or self._grouped(t.order):
                continue
            left = 1 - t.executed / t.amount if t.amount > 0 else ZERO
            total += (t.closes if t.closes is not None else t.amount) * left
        return total

    def _fit_to_ledger(self, order: bt.Order, book: SymbolBook, amount: Decimal,
                       reference: Decimal) -> tuple[Decimal, Decimal | None]:  # fmt: skip
        """Check an order against the strategy's ledger, the account being its ceiling.

        A sell never sells coins the strategy did not buy. One that asks for more than the
        account holds for the position, by no more than the fees the exchange took in the coin,
        is sent at what is held (rounded down to the lot step) and closes the position: returns
        that amount and what it closes. A buy must be paid from the ledger's cash.
        """
        symbol, base, quote = book.symbol, book.base, book.quote
        if order.issell():
            if amount > book.size:
                held = f"holds {book.size} {base}" if book.size > 0 else f"holds no {base}"
                raise _Reject(f"selling {amount} {base} would sell coins this strategy did not buy: its position "
                              f"{held} (spot: no short selling)", margin=True)  # fmt: skip
            selling = ZERO if self._grouped(order) else self._selling(symbol)
            if selling > 0 and amount > book.size - selling:
                raise _Reject(f"selling {amount} {base} would sell coins this strategy did not buy: its position "
                              f"holds {book.size} {base} and its open sell orders already sell {selling} of it",
                              margin=True)  # fmt: skip
            step = self._lot_step(symbol)
            # The position's coins and the dust earlier exits left: both bought by this strategy,
            # so an exit may sell them together (the account holds them; the dust shrinks).
            own = book.held + book.dust
            held = (own // step) * step if step > 0 else own
            free, locked = self.balances.get(base, (ZERO, ZERO))
            if amount < held:
                return amount, None
            if held <= 0:
                raise _Reject(f"nothing of the position is left to sell: the exchange took its {book.size} {base} "
                              f"as fees", margin=True)  # fmt: skip
            if amount > held:
                order.addinfo(fee_adjusted=True, asked=float(amount), sent=float(held),
                              note=f"sent {held} of the {amount} {base} asked: the exchange took "
                                   f"{book.coin_fees} {base} of the position as fees")  # fmt: skip
                log.info("%s: exit of %s %s sent as %s (fees in the coin); it closes the position", symbol, amount,
                         base, held)  # fmt: skip
            if free + locked and free < held:
                log.info("%s: %s %s of the account is free, the exit needs %s", symbol, free, base, held)
            return held, book.size
        cost = amount * reference
        mine = self.cash_in(quote)
        if reference > 0 and cost > mine:
            raise _Reject(f"this strategy's cash {mine} {quote} cannot pay for {amount} {base} at "
                          f"{reference} ({cost:f} {quote})", margin=True)  # fmt: skip
        free = self.balances.get(quote, (ZERO, ZERO))[0]
        if reference > 0 and quote in self.balances and cost > free:
            raise _Reject(f"the account has {free} {quote} free; {amount} {base} at {reference} needs {cost:f} "
                          f"{quote}", margin=True)  # fmt: skip
        return amount, None

    def _reject_now(self, order: bt.Order, reason: str, *, margin: bool = False) -> bt.Order:
        order.addinfo(reject_reason=reason)
        if margin:  # backtrader's word for an order the account cannot pay for
            self._set_status(order, bt.Order.Margin)
        else:
            order.reject(self.broker)
        self.broker.notify(order)
        log.info("order %s before sending: %s", order.getstatusname(), reason)
        return order

    def cancel(self, order: bt.Order) -> bool:
        cid = order.info.get("client_order_id")
        tracked = self.orders.get(cid) if cid else None
        if tracked is None and order.alive() and order.ref in self.bracket_of:
            # A held child: as in BackBroker, cancelling it cancels its whole bracket, which
            # here means the parent (its end cancels the children).
            bracket = self.brackets.get(self.bracket_of[order.ref])
            if bracket is None:
                return False
            if not bracket.sent:
                return self.cancel(bracket.parent) if bracket.parent.alive() else False
            self._cancel_member(order, "cancelled by the strategy")  # an armed stop
            return True
        if tracked is None or tracked.done or not order.alive() or self.stopping.is_set():
            return False
        if tracked.expiring is not None:
            try:
                expired = order.data.datetime[0] >= tracked.expiring
            except (IndexError, TypeError):
                expired = True
            if expired:
                return False  # in a backtest it has expired already
            tracked.expiring = None  # cancelled on the last bar it is valid for: Canceled, as in a backtest
            if tracked.cancelling:
                return True  # the cancel for its validity is on its way
        self._request_cancel(tracked)
        return True

    def _request_cancel(self, tracked: Tracked) -> None:
        assert self.sender is not None
        tracked.cancelling = True
        self.sender.put(CancelRequest(tracked.client_order_id, tracked.symbol, tracked.type, tracked.order_id,
                                      tracked.created_ms))  # fmt: skip

    @staticmethod
    def _expiry(order: bt.Order, kind: str) -> float | None:
        """The datetime of the bar ``order`` expires at, when that is the data's next bar.

        BackBroker expires an order (never a market order) at the first bar whose datetime is
        past ``order.valid``, before that bar can fill it: live, it must leave the exchange when
        the bar before closes.
        """
        if not order.valid or kind == "market" or order.exectype == bt.Order.Market:
            return None
        following = next_bar_time(order.data)
        return following if following is not None and following > order.valid else None

    def _expire_orders(self) -> None:
        """Cancel on the exchange the orders whose validity ends before the next bar; finish
        the ones that were never sent. Held bracket children follow their bracket."""
        if self.stopping.is_set() or self.sender is None:
            return
        for tracked in list(self.timed.values()):
            order = tracked.order
            if tracked.done or not order.valid:
                del self.timed[tracked.client_order_id]
                continue
            if tracked.unsent:
                tracked.done = True
                self._accept(tracked)
                self._finish_expired(tracked)
                continue
            if tracked.cancelling or not order.alive():
                continue
            expires = self._expiry(order, tracked.type)
            if expires is None:
                continue
            bars = len(order.data)
            if tracked.expiring is not None and bars <= tracked.expire_bar:
                continue  # its cancel failed: tried again on the next bar
            if tracked.expiring is None:
                tracked.expiring = expires
                log.info("order %s: valid until %s, expires at the bar of %s: cancelling it",
                         tracked.client_order_id, bt.num2date(order.valid), bt.num2date(expires))  # fmt: skip
            tracked.expire_bar = bars
            self._request_cancel(tracked)

    def _finish_expired(self, tracked: Tracked) -> None:
        order = tracked.order
        self._set_status(order, bt.Order.Expired)
        if tracked.expiring is not None:
            order.executed.dt = tracked.expiring  # the bar BackBroker expires it at
        self.broker.notify(order)
        self._after(order)

    def orders_open(self) -> list[bt.Order]:
        # A trailing stop being moved stays open while its new exchange order is prepared (its
        # old record is done by then, the new one not made yet): the strategy's one order.
        orders: list[bt.Order] = []
        seen: set[int] = set()
        for t in list(self.orders.values()):
            if (not t.done or t.replacing) and t.order.alive() and id(t.order) not in seen:
                seen.add(id(t.order))
                orders.append(t.order)
        held = [
            c for b in self.brackets.values() for c in b.children
            if c.alive() and c.info.get("client_order_id") not in self.orders
        ]  # fmt: skip
        return orders + held

    def _find(self, client_order_id: str | None, order_id: str | None, symbol: str) -> Tracked | None:
        if client_order_id and client_order_id in self.orders:
            return self.orders[client_order_id]
        if order_id:
            cid = self.by_order_id.get((symbol, str(order_id)))
            if cid is not None:
                return self.orders.get(cid)
        return None

    def _learn_order_id(self, tracked: Tracked, order_id: str | None) -> None:
        if order_id and tracked.order_id is None:
            tracked.order_id = str(order_id)
            tracked.order.addinfo(order_id=tracked.order_id)
            self.by_order_id[(tracked.symbol, tracked.order_id)] = tracked.client_order_id
            for _, fill, source in self.parked.pop((tracked.symbol, tracked.order_id), []):
                self.apply_fill(fill, source)

    def apply_ack(self, ack: Ack) -> None:
        assert self.journal is not None
        self.journal.update_order(ack.client_order_id, order_id=ack.order_id, status="new")
        tracked = self.orders.get(ack.client_order_id)
        if tracked is None:
            return
        tracked.acked = True
        self._learn_order_id(tracked, ack.order_id)
        heard = tracked.seen
        if not tracked.done:
            self._accept(tracked)
        if ack.update is not None:
            self.apply_update(ack.update)
        elif not heard and not tracked.done and tracked.waiting_since is None:
            # An answer without a status (Bybit's create answers only ids): the stream must show
            # the order within fill_grace, else it is audited over REST (its fills may be lost).
            tracked.waiting_since = time.monotonic()

    def apply_submit_failed(self, failed: SubmitFailed) -> None:
        assert self.journal is not None
        tracked = self.orders.get(failed.client_order_id)
        if tracked is None:
            return
        shown = tracked.seen if tracked.held else tracked.order.status != bt.Order.Submitted
        if tracked.done or shown or tracked.executed:
            # The stream already showed the order alive: the exchange has it after all.
            log.warning("order %s: create reported %r, but the exchange shows the order; keeping it",
                        failed.client_order_id, failed.reason)  # fmt: skip
            return
        self.journal.update_order(failed.client_order_id, status="rejected", reason=failed.reason)
        tracked.done = True
        order = tracked.order
        order.addinfo(reject_reason=failed.reason)
        if failed.margin:  # backtrader's word for an order the account cannot pay for
            self._set_status(order, bt.Order.Margin)
        else:
            order.reject(self.broker)
        self.broker.notify(order)
        log.info("order %s %s: %s", failed.client_order_id, order.getstatusname(), failed.reason)
        self._after(order)

    def _accept(self, tracked: Tracked) -> None:
        tracked.seen = True
        order = tracked.order
        if order.status in (bt.Order.Created, bt.Order.Submitted):
            order.accept(self.broker)
            self.broker.notify(order)

    def apply_update(self, update: OrderUpdate) -> None:
        assert self.journal is not None
        tracked = self._find(update.client_order_id, update.order_id, update.symbol)
        cid = tracked.client_order_id if tracked else update.client_order_id
        if cid:
            self.journal.update_order(cid, order_id=update.order_id or None, status=update.status.value,
                                      filled=update.filled, average=update.average, reason=update.reason)  # fmt: skip
        self._hook(update)
        if tracked is None or tracked.done:
            return
        self._learn_order_id(tracked, update.order_id)
        tracked.exchange_filled = max(tracked.exchange_filled, update.filled)
        if update.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED):
            self._accept(tracked)
        else:
            tracked.final = update
        self._progress(tracked)

    def _progress(self, tracked: Tracked) -> None:
        """Finish an order whose final status has arrived once all its fills are applied."""
        if tracked.done:
            return
        if tracked.executed >= tracked.amount:
            tracked.done = True
            return
        if tracked.exchange_filled > tracked.executed:
            if tracked.waiting_since is None:
                tracked.waiting_since = time.monotonic()
            return
        tracked.waiting_since = None
        tracked.audits = 0
        final = tracked.final
        if final is None:
            return
        order = tracked.order
        if final.status is OrderStatus.EXPIRED and self._oco_leg(order) and self._sibling_pending(tracked):
            return  # the other leg's fill is on its way: backtrader notifies it first
        if final.status is OrderStatus.CANCELED and self._replace_trailing(tracked):
            return  # a trailing stop moved: the same order rests again at its new price
        tracked.done = True
        if final.status is OrderStatus.REJECTED:
            order.addinfo(reject_reason=final.reason or "rejected by the exchange")
            self._set_status(order, bt.Order.Rejected)
        elif tracked.expiring is not None:  # cancelled because its validity ended
            self._finish_expired(tracked)
            return
        elif final.status is OrderStatus.EXPIRED and not self._oco_leg(order):
            self._set_status(order, bt.Order.Expired)
        else:
            self._set_status(order, bt.Order.Canceled)
        self.broker.notify(order)
        self._after(order)

    @staticmethod
    def _set_status(order: bt.Order, status: int) -> None:
        # order.cancel()/reject() stamp the data's current bar, which may not exist yet.
        order.status = status
        try:
            if len(order.data):
                order.executed.dt = order.data.datetime[0]
        except (IndexError, TypeError):
            pass
