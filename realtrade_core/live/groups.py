"""Brackets and OCO groups: held children, exits resting the exchange's way, armed stops."""

from __future__ import annotations

import logging
import time
from decimal import Decimal

import backtrader as bt

from ..journal import JournalLink
from .messages import OcoRefused, OcoRequest
from .model import BT_TO_TYPE, ZERO, Bracket, Tracked, bar_close_ms, dec

log = logging.getLogger(__name__)


class GroupsMixin:
    """Bracket and OCO handling of :class:`~realtrade_core.live.session.LiveSession`."""

    def _link(self, order: bt.Order, group: str, kind: str, state: str, amount: Decimal | None = None) -> None:
        """Journal ``order`` as a member of ``group`` (see the journal's links)."""
        cid = order.info.get("client_order_id")
        if not cid or self.journal is None:
            return
        created = order.created
        price = stop = None
        if order.exectype == bt.Order.Limit:
            price = created.price
        elif order.exectype == bt.Order.Stop:
            stop = created.price
        elif order.exectype == bt.Order.StopLimit:
            stop, price = created.price, created.pricelimit
        self.linked.add(cid)
        try:
            self.journal.record_link(JournalLink(
                cid, group, kind, self.symbol_of(order.data), "buy" if order.isbuy() else "sell",
                BT_TO_TYPE.get(order.exectype, "market"), amount, dec(price), dec(stop), state,
            ))  # fmt: skip
        except Exception:
            log.exception("live broker: could not journal order %s as a member of %s", cid, group)

    def _set_link(self, order: bt.Order, state: str, amount: Decimal | None = None) -> None:
        cid = order.info.get("client_order_id")
        if cid in self.linked and self.journal is not None:
            try:
                self.journal.update_link(cid, state=state, amount=amount)
                if state == "armed" and self.io is not None:  # bars are on the exchange's clock
                    self.journal.set_meta(f"armed_ms.{cid}", str(self.io.exchange_ms()))
            except Exception:
                log.exception("live broker: could not journal the %s state of order %s", state, cid)

    def _submit_bracket_member(self, order: bt.Order) -> bt.Order:
        """BackBroker's transmit semantics: the parent goes when its last child is submitted."""
        pref = order.parent.ref if order.parent is not None else order.ref
        if order.parent is None:
            self.untransmitted[pref] = [order]
        elif pref not in self.untransmitted:
            return self._reject_now(order, "its bracket parent is not waiting for children (rejected or sent)")
        else:
            self.untransmitted[pref].append(order)
        if not order.transmit:
            return order
        parent, *children = self.untransmitted.pop(pref)
        reason = None
        if self.stopping.is_set():
            reason = "the live broker has stopped"
        else:
            for member in (parent, *children):
                why = self._unsupported(member)
                if why is not None:
                    reason = f"bracket member {member.ref}: {why}"
                    break
        if reason is not None:
            for member in (parent, *children):
                self._reject_now(member, reason)
            return order
        self._send(parent)
        if parent.status == bt.Order.Rejected:
            why = parent.info.get("reject_reason")
            for child in children:
                self._reject_now(child, f"its bracket parent was rejected: {why}")
            return order
        bracket = Bracket(parent, children)
        self._register(bracket)
        group = parent.info.get("client_order_id")
        self._link(parent, group, "parent", "sent")
        for child in children:
            self._link(child, group, "child", "held")
            child.addcomminfo(self.broker.getcommissioninfo(child.data))
            child.submit(self.broker)
            self.broker.notify(child)
            child.accept(self.broker)
            self.broker.notify(child)
        return order

    def _after(self, order: bt.Order) -> None:
        """Bracket and OCO consequences of an order's fill or end, as BackBroker has them."""
        if not order.alive():
            self._set_link(order, "done")
        try:
            self._bracket_step(order)
            self._oco_step(order)
        except Exception:  # never an exception into the strategy
            log.exception("live broker: bracket/OCO handling of order %s failed", order.ref)

    def _bracket_step(self, order: bt.Order) -> None:
        pref = self.bracket_of.get(order.ref)
        bracket = self.brackets.get(pref) if pref is not None else None
        if bracket is None or order.alive():
            return
        if order is bracket.parent:
            if order.status == bt.Order.Completed and not bracket.sent:
                self._send_children(bracket)
            elif not bracket.sent:
                for child in bracket.children:
                    self._cancel_member(child, f"its bracket parent ended {order.getstatusname()}")
                self._forget(bracket)
            return
        if order.ref in bracket.cancelled_for_trigger and order.status != bt.Order.Completed:
            self._release_triggered(bracket)  # cancelled to make room for a triggered stop
            if not any(c.alive() for c in bracket.children):
                self._forget(bracket)
            return
        # A child ended (filled, cancelled, rejected): its siblings are cancelled (OCO). The
        # exchange does that itself for an OCO list whose leg traded or triggered.
        if bracket.native_oco:
            for sibling in bracket.children:
                waiting = self.orders.get(sibling.info.get("client_order_id") or "")
                if sibling is not order and waiting is not None and waiting.waiting_sibling is not None:
                    self._progress(waiting)
        for sibling in bracket.children:
            if sibling is not order and not bracket.native_oco:
                self._cancel_member(sibling, f"bracket sibling {order.ref} ended {order.getstatusname()}")
        if not any(c.alive() for c in bracket.children):
            self._forget(bracket)

    def _forget(self, bracket: Bracket) -> None:
        self.brackets.pop(bracket.parent.ref, None)
        for member in (bracket.parent, *bracket.children):
            self.bracket_of.pop(member.ref, None)

    def _send_children(self, bracket: Bracket, amount: Decimal | None = None) -> None:
        """The parent has filled: send the children, sized by what was really filled.

        A spot exchange locks what every resting order may sell, so the take-profit and the
        stop of a bracket cannot both rest for the whole position. The non-stop child goes to
        the exchange and the stop children are armed here: when a bar crosses a stop's price,
        its sibling is cancelled and the stop goes as a market order (a stop-limit as a limit
        order at its limit price) for what is left.
        """
        bracket.sent = True
        parent = bracket.parent
        tracked = self.orders.get(parent.info.get("client_order_id"))
        if amount is not None:
            bracket.amount = amount
        else:
            bracket.amount = tracked.executed if tracked is not None else Decimal(str(abs(parent.executed.size)))
        if parent.isbuy():
            book = self.book_for_data(parent.data)
            bracket.amount = min(bracket.amount, max(book.size, ZERO))
        alive = [c for c in bracket.children if c.alive()]
        stops = [c for c in alive if c.exectype in (bt.Order.Stop, bt.Order.StopLimit)]
        if len(alive) < 2 or len(stops) == len(alive):
            stops = []
        mode = self.broker.bracket_exits
        if len(alive) == 2 and len(stops) == 1 and mode in ("oco", "conditional"):
            (stop,) = stops
            (limit,) = [c for c in alive if c is not stop]
            if mode == "oco":
                if self._send_oco(bracket, limit, stop):
                    return
            else:
                self._send_child(stop, bracket.amount)
                self._send_child(limit, bracket.amount, as_type="take_profit")
                return
        self._hold_exits(bracket, alive, stops)

    def _hold_exits(self, bracket: Bracket, alive: list[bt.Order], stops: list[bt.Order]) -> None:
        for child in alive:
            if child in stops:
                self._size_child(child, bracket.amount)
                child.activate()
                bracket.armed[child.ref] = len(child.data)
                self._set_link(child, "armed", bracket.amount)
            else:
                self._send_child(child, bracket.amount)

    def _send_oco(self, bracket: Bracket, limit: bt.Order, stop: bt.Order) -> bool:
        """Both exits as one OCO list; False (nothing sent) when they cannot go that way."""
        book = self.book_for_data(limit.data)
        amount = bracket.amount
        if limit.issell():
            amount = min(amount, max(book.size, ZERO))
        if amount <= 0 or limit.issell() != stop.issell():
            return False
        requests = []
        bracket.native_oco = True  # a leg rejected here must not cancel the other: it goes alone
        for child in (limit, stop):
            self._size_child(child, amount)
            child.activate()
            request = self._prepare(child, held=True, as_type=None)
            if request is not None and child.alive():
                requests.append(request)
        if len(requests) < 2:
            bracket.native_oco = False
            assert self.sender is not None
            for request in requests:
                self.sender.put(request)
                self._set_link(self.orders[request.client_order_id].order, "sent", amount)
            return True
        for child in (limit, stop):
            self._set_link(child, "sent", amount)
        assert self.sender is not None
        self.sender.put(OcoRequest(*requests))
        return True

    def _sibling_pending(self, tracked: Tracked) -> bool:
        """An OCO leg ended by the exchange waits (at most ``fill_grace`` seconds) for the other
        leg, which triggered, to fill, so the strategy hears of the exit before the cancel."""
        now = time.monotonic()
        if tracked.waiting_sibling is None:
            tracked.waiting_sibling = now
        if now - tracked.waiting_sibling > float(self.broker.p.fill_grace):
            return False
        pref = self.bracket_of.get(tracked.order.ref)
        bracket = self.brackets.get(pref) if pref is not None else None
        return bracket is not None and any(
            c.alive() for c in bracket.children if c is not tracked.order and c is not bracket.parent
        )

    def _oco_leg(self, order: bt.Order) -> bool:
        """Whether ``order`` is an exit of a bracket placed as an exchange OCO list (its end by
        the other leg is a cancellation, as backtrader reports a bracket sibling's)."""
        pref = self.bracket_of.get(order.ref)
        bracket = self.brackets.get(pref) if pref is not None else None
        return bracket is not None and bracket.native_oco and order is not bracket.parent

    def apply_oco_refused(self, refused: OcoRefused) -> None:
        """The exchange refused the list (a price already crossed, say): nothing was placed, so
        the exits go the generic way: the take-profit alone, the stop held by the broker."""
        assert self.journal is not None
        children = []
        for request in (refused.request.limit, refused.request.stop):
            self.journal.update_order(request.client_order_id, status="rejected", reason=refused.reason)
            self.journal.update_link(request.client_order_id, state="done")
            tracked = self.orders.pop(request.client_order_id, None)
            if tracked is not None:
                children.append(tracked.order)
        pref = self.bracket_of.get(children[0].ref) if children else None
        bracket = self.brackets.get(pref) if pref is not None else None
        self.put_store(f"the exchange refused a bracket's OCO exits ({refused.reason}); the take-profit goes alone "
                       f"and the broker holds the stop")  # fmt: skip
        if bracket is None:
            return
        bracket.native_oco = False
        group = bracket.parent.info.get("client_order_id")
        for child in children:
            child.addinfo(client_order_id=self.broker.new_client_order_id())  # the first ones are spent
            self._link(child, group, "child", "held")
        alive = [c for c in children if c.alive()]
        self._hold_exits(bracket, alive, [c for c in alive if c.exectype in (bt.Order.Stop, bt.Order.StopLimit)])

    def _size_child(self, child: bt.Order, amount: Decimal) -> None:
        signed = float(amount) if child.isbuy() else -float(amount)
        child.size = signed
        child.created.size = signed
        child.executed.remsize = signed

    def _send_child(self, child: bt.Order, amount: Decimal, as_type: str | None = None) -> None:
        if child.issell():
            # What the account holds: a fee charged in the base asset made it smaller (the
            # rule of close(), which sells the position).
            book = self.book_for_data(child.data)
            amount = min(amount, max(book.size, ZERO))
        if amount <= 0:
            self._reject_now(child, "nothing to sell: the position is empty")
            self._after(child)
            return
        self._size_child(child, amount)
        child.activate()
        self._send(child, held=True, as_type=as_type)
        if child.alive():
            self._set_link(child, "sent", amount)

    def _check_armed(self) -> None:
        """Trigger armed bracket stops whose price a bar has crossed (as a backtest would)."""
        for bracket in list(self.brackets.values()):
            for child in bracket.children:
                armed_at = bracket.armed.get(child.ref)
                if armed_at is None or child in bracket.triggered or not child.alive():
                    continue
                data = child.data
                try:
                    if len(data) <= armed_at:
                        continue
                    since = bracket.armed_since.get(child.ref)
                    if since is not None and bar_close_ms(data) <= since:
                        continue  # a bar of history from before the stop was armed
                    stop = float(child.created.price)
                    crossed = data.high[0] >= stop if child.isbuy() else data.low[0] <= stop
                except (IndexError, TypeError):
                    continue
                if not crossed:
                    continue
                log.info("bracket stop %s triggered at %s: cancelling its sibling", child.ref, stop)
                bracket.triggered.append(child)
                self._set_link(child, "triggered")
                for sibling in bracket.children:
                    if sibling is not child and sibling.alive() and sibling.ref not in bracket.armed:
                        bracket.cancelled_for_trigger.add(sibling.ref)
                        self._cancel_member(sibling, f"bracket stop {child.ref} triggered")
                self._release_triggered(bracket)

    def _release_triggered(self, bracket: Bracket) -> None:
        """Send a triggered stop once the siblings cancelled for it are gone."""
        if not bracket.triggered:
            return
        if any(c.alive() for c in bracket.children if c.ref in bracket.cancelled_for_trigger):
            return
        child = bracket.triggered[0]
        if not child.alive():
            return
        sold = Decimal(0)
        for sibling in bracket.children:
            if sibling is not child:
                cid = sibling.info.get("client_order_id") or ""
                tracked = self.orders.get(cid)
                sold += tracked.executed if tracked is not None else self._journal_filled(cid)
        as_type = "limit" if child.exectype == bt.Order.StopLimit else "market"
        bracket.armed.pop(child.ref, None)
        self._send_child(child, bracket.amount - sold, as_type)

    def _cancel_member(self, order: bt.Order, why: str) -> None:
        """Cancel a bracket or OCO member: on the exchange if it was sent, else locally."""
        if not order.alive():
            return
        cid = order.info.get("client_order_id")
        tracked = self.orders.get(cid) if cid else None
        if tracked is not None:
            if not tracked.done:
                self.cancel(order)
            return
        order.addinfo(cancel_reason=why)
        self._set_status(order, bt.Order.Canceled)
        self.broker.notify(order)
        self._after(order)

    def _oco_step(self, order: bt.Order) -> None:
        """BackBroker's _ococheck: when one order of a group executes or ends, the others go."""
        if order.alive() and not order.executed.size:
            return
        ocos, ocol = self.broker._ocos, self.broker._ocol
        leader = ocos.get(ocos.get(order.ref, order.ref))
        group = ocol.get(leader) if leader is not None else None
        if not group or len(group) < 2:
            return
        ocol.pop(leader, None)
        refs = set(group) - {order.ref}
        candidates = [t.order for t in self.orders.values()]
        candidates += [c for b in self.brackets.values() for c in (b.parent, *b.children)]
        seen: set[int] = set()
        for other in candidates:
            if other.ref in refs and other.ref not in seen:
                seen.add(other.ref)
                self._cancel_member(other, f"OCO: order {order.ref} {order.getstatusname()}")
