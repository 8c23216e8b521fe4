"""Start-up: positions from balances, the journal against the exchange, groups rebuilt."""

from __future__ import annotations

import json
import logging
import math
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import backtrader as bt

from ..events import Fill, Side
from ..journal import SUBMITTING, JournalLink, JournalOrder
from .model import FINAL_TO_BT, STOP_TYPES, TYPE_TO_BT, ZERO, Bracket, SymbolBook, Tracked, dec

log = logging.getLogger(__name__)


#: Stands for the order that opened a position a previous run left: backtrader's Trade reads only
#: ``p.simulated`` of the order it is updated with.
_RESTORED = SimpleNamespace(p=SimpleNamespace(simulated=False))


class ReconcileMixin:
    """Start-up reconciliation of :class:`~realtrade_core.live.session.LiveSession`."""

    def load_position(self, book: SymbolBook) -> None:
        """The ledger's position in ``book``'s market: as its journal left it; for a new ledger
        flat, or with ``adopt_holdings=True`` the account's balance of the coin at the current
        price. It never includes coins the account held for other reasons."""
        assert self.journal is not None
        book.size = book.price = book.coin_fees = ZERO
        known = None if self.new_ledger else self.journal.position(book.symbol)
        if not self.new_ledger:
            book.dust = dec(self.journal.get_meta(f"ledger.dust.{book.symbol}")) or ZERO
        if known is not None and known[0] > 0:
            book.size, book.price = known
            book.coin_fees = dec(self.journal.get_meta(f"ledger.coin_fees.{book.symbol}")) or ZERO
        elif self.new_ledger and self.broker.p.adopt_holdings:
            free, locked = self.balances.get(book.base, (ZERO, ZERO))
            book.size = free + locked
            if book.size:
                book.price = self._current_price(book)
                self.put_store(f"{book.symbol}: adopted the account's {book.size} {book.base} as this strategy's "
                               f"position at {book.price}")  # fmt: skip
        if book.size:
            free, locked = self.balances.get(book.base, (ZERO, ZERO))
            if free + locked < book.held:
                self.put_store(f"{book.symbol}: the account holds {free + locked} {book.base}, less than the "
                               f"{book.held} this strategy's position left: it shrinks to what is held")  # fmt: skip
                book.size, book.coin_fees = free + locked, ZERO
        book.trade_size = 0.0  # the strategy holds no Trade for what existed before it started
        book.sync()
        self._persist(book)

    def _restore_trades(self) -> None:
        """Give each strategy an open Trade for a position the journal kept (it was opened by a
        previous run), so that closing it reaches ``notify_trade`` as in one long run."""
        strategies = list(getattr(self.cerebro, "runningstrats", None) or [])
        if not strategies:
            return
        for symbol in sorted(self.trades_to_restore):
            book = self.books.get(symbol)
            if book is None or book.data is None or not len(book.data) or not book.size:
                if book is None or not book.size:
                    self.trades_to_restore.discard(symbol)
                continue
            self.trades_to_restore.discard(symbol)
            comminfo = self.broker.getcommissioninfo(book.data)
            size, price = float(book.size), float(book.price)
            for strategy in strategies:
                trades = strategy._trades[book.data][0]
                if trades and not trades[-1].isclosed:
                    continue
                trade = bt.Trade(data=book.data, tradeid=0, historyon=strategy._tradehistoryon)
                trade.update(_RESTORED, size, price, comminfo.getoperationcost(size, price), 0.0, 0.0, comminfo)
                trades.append(trade)
            book.trade_size = size
            log.info("%s: the position of %s @ %s the journal kept is the strategy's open trade", symbol, size, price)

    def _current_price(self, book: SymbolBook) -> Decimal:
        data = book.data
        try:
            if data is not None and len(data):
                return dec(data.close[0]) or ZERO
        except (IndexError, TypeError):
            pass
        try:
            ticker = self.io.read(self.store.client.fetch_ticker, book.symbol)
            return dec(ticker.get("last") or ticker.get("close")) or ZERO
        except Exception as exc:
            log.warning("%s: no current price for %s (%s)", self.store.exchange, book.symbol, self.io.scrub(exc))
            return ZERO

    def last_price(self, book: SymbolBook) -> float:
        """The last close seen in cerebro's thread (else the position's price)."""
        if book.last > 0:
            return book.last
        return float(book.price)

    def _read_prices(self) -> None:
        for book in self.books.values():
            data = book.data
            try:
                if data is not None and len(data):
                    close = float(data.close[0])
                    if close > 0 and not math.isnan(close):
                        book.last = close
            except (IndexError, TypeError):
                pass

    def reconcile(self) -> None:
        """Journal vs exchange at start: resolve orders the journal left open, fetch the fills
        missed while down, re-attach our open orders, report the ones we do not know."""
        assert self.io is not None and self.journal is not None
        journal, io = self.journal, self.io
        open_journal = journal.open_orders()
        symbols = set(self.books) | {o.symbol for o in open_journal}
        exchange_open: dict[str, list[dict[str, Any]]] = {}
        for symbol in sorted(symbols):
            exchange_open[symbol] = io.read(io.open_orders, symbol)
        by_cid = {o.get("clientOrderId"): o for orders in exchange_open.values() for o in orders}

        # 1. Orders the journal thinks are open but the exchange does not list: what became of them?
        for jo in open_journal:
            live = by_cid.get(jo.client_order_id)
            if live is not None:
                journal.update_order(jo.client_order_id, order_id=str(live.get("id")))
                continue
            found = io.read(io.find_order, jo.symbol, jo.client_order_id, jo.order_id, jo.created_ms)
            if found is None:
                status, reason = ("rejected", "never reached the exchange") if jo.status == SUBMITTING else (
                    "expired", "not found on the exchange at restart")  # fmt: skip
                journal.update_order(jo.client_order_id, status=status, reason=reason)
                self.put_store(f"journal order {jo.client_order_id} ({jo.symbol}) is not on the exchange: "
                               f"marked {status}")  # fmt: skip
                continue
            update = io.order_update(found, symbol=jo.symbol)
            journal.update_order(jo.client_order_id, order_id=str(found.get("id")),
                                 status=update.status.value if update else None,
                                 filled=update.filled if update else None,
                                 average=update.average if update else None)  # fmt: skip
            if update is not None and update.status.is_open:
                exchange_open.setdefault(jo.symbol, []).append(found)
                by_cid[jo.client_order_id] = found
            elif update is not None:
                self.put_store(f"order {jo.client_order_id} ({jo.symbol}) ended while offline: "
                               f"{update.status.value}, filled {update.filled}")  # fmt: skip

        # 2. Fills that happened while the process was down.
        offline = 0
        for symbol in sorted(symbols):
            # From the last recorded fill, and far enough back to cover every order that was
            # open at shutdown (the stream may have dropped some of their fills back then).
            starts = [o.created_ms - 60_000 for o in open_journal if o.symbol == symbol]
            last_fill = journal.last_fill_time(symbol)
            if last_fill is not None:
                starts.append(last_fill)
            elif not starts:
                if not journal.orders(symbol):
                    continue  # no order of ours was ever journaled here: nothing can have filled
                starts.append(min(o.created_ms for o in journal.orders(symbol)) - 60_000)
            since = min(starts)
            for t in io.trades_since(symbol, max(0, since)):
                jo = journal.find_order(str(t.get("order")), symbol)
                fill = io.fill(t, jo.client_order_id if jo else None)
                if jo is None:
                    continue  # not an order of this broker: not this strategy's, its ledger is unchanged
                if self.invalid_fill(fill) is None and journal.record_fill(fill, source="offline"):
                    offline += 1
                    self._journal_position(fill, jo.client_order_id)
                    journal.update_order(jo.client_order_id, filled=self._journal_filled(jo.client_order_id))
        if offline:
            self.put_store(f"{offline} fill(s) that happened while offline were recorded")

        # 3. Re-attach our open orders; report unknown ones.
        for symbol, orders in exchange_open.items():
            for o in orders:
                cid = o.get("clientOrderId")
                jo = journal.get_order(cid) if cid else None
                if jo is None:
                    self.put_store(f"open order {o.get('id')} on {symbol} ({o.get('side')} {o.get('amount')} @ "
                                   f"{o.get('price')}) is not in the journal: left alone")  # fmt: skip
                    continue
                book = self.books.get(symbol)
                if book is None or book.data is None:
                    self.put_store(f"open order {cid} on {symbol} belongs to no data feed of this run: left alone")
                    continue
                self.reattach(jo, str(o.get("id")), book)

    def _journal_filled(self, client_order_id: str) -> Decimal:
        assert self.journal is not None
        return sum((f.amount for f in self.journal.fills(client_order_id=client_order_id)), ZERO)

    def _journal_position(self, fill: Fill, client_order_id: str) -> None:
        """A fill of ours made while the process was down moves the ledger the journal keeps."""
        assert self.journal is not None
        journal = self.journal
        if journal.get_meta("ledger.cash") is None:
            return  # a journal from before ledgers: the ledger starts new
        market = self.store.market(fill.symbol)
        book = SymbolBook(fill.symbol, market["base"], market["quote"])
        book.size, book.price = journal.position(fill.symbol) or (ZERO, ZERO)
        book.coin_fees = dec(journal.get_meta(f"ledger.coin_fees.{fill.symbol}")) or ZERO
        book.dust = dec(journal.get_meta(f"ledger.dust.{fill.symbol}")) or ZERO
        jo = journal.get_order(client_order_id)
        closes = dec(journal.get_meta(f"closes.{client_order_id}"))
        tracked = None
        if jo is not None and closes is not None:
            tracked = Tracked(None, jo.client_order_id, jo.symbol, jo.side, jo.type, jo.amount, jo.price,
                              jo.stop_price, jo.created_ms, closes=closes)  # fmt: skip
        saved_cash, saved_other = self.ledger_cash, dict(self.other_cash)
        self.ledger_cash = dec(journal.get_meta("ledger.cash")) or ZERO
        self.other_cash = {c: dec(journal.get_meta(f"ledger.cash.{c}")) or ZERO for c in saved_other}
        try:
            self._move_position(book, fill, tracked)
            self._persist(book)
        finally:
            self.ledger_cash, self.other_cash = saved_cash, saved_other

    def reattach(self, jo: JournalOrder, order_id: str, book: SymbolBook) -> None:
        """A backtrader order for an open order a previous run placed (``info.reattached``)."""
        order = self._make_order(jo, jo.amount, book)
        order.addinfo(order_id=order_id)
        assert self.journal is not None
        order.submit(self.broker)
        order.accept(self.broker)
        tracked = Tracked(order, jo.client_order_id, jo.symbol, jo.side, jo.type, jo.amount, jo.price, jo.stop_price,
                          jo.created_ms, order_id=order_id, acked=True, reattached=True,
                          closes=dec(self.journal.get_meta(f"closes.{jo.client_order_id}")))  # fmt: skip
        self.orders[jo.client_order_id] = tracked
        self.by_order_id[(jo.symbol, order_id)] = jo.client_order_id
        valid = self.journal.get_meta(f"valid.{jo.client_order_id}")
        if valid:  # its validity carries on: cancelled on the exchange when it ends, as before
            order.valid = float(valid)
            self.timed[jo.client_order_id] = tracked
        assert self.journal is not None
        for f in self.journal.fills(client_order_id=jo.client_order_id):
            fill = Fill(self.store.exchange or "", f.trade_id, f.order_id or order_id, f.client_order_id, f.symbol,
                        Side(f.side), f.price, f.amount, f.fee, f.fee_currency, f.is_maker, f.time_ms)  # fmt: skip
            self._execute(tracked, fill, book, historical=True, notify=False)
        tracked.exchange_filled = tracked.executed
        self.broker.notify(order)
        log.info("re-attached open order %s (%s %s %s %s)", jo.client_order_id, jo.side, jo.amount, jo.symbol, jo.type)

    def _make_order(self, row: JournalOrder | JournalLink, amount: Decimal, book: SymbolBook) -> bt.Order:
        """A backtrader order (``info.reattached``) for an order a previous run placed or held."""
        cls = bt.BuyOrder if row.side == "buy" else bt.SellOrder
        price = plimit = None
        exectype = TYPE_TO_BT.get(row.type, bt.Order.Market)
        trail: dict[str, Any] = {}
        if row.type == "limit":
            price = row.price
        elif row.type in STOP_TYPES:
            price, plimit = row.stop_price, row.price if row.type == "stop_limit" else None
            saved = self.journal.get_meta(f"trail.{row.client_order_id}") if self.journal is not None else None
            if saved:  # a trailing stop: it goes on trailing from where it rests
                distance = json.loads(saved)
                trail = {"trailamount": distance.get("amount") or 0.0, "trailpercent": distance.get("percent") or 0.0}
                exectype = bt.Order.StopTrailLimit if row.type == "stop_limit" else bt.Order.StopTrail
        # simulated=True only while constructing: the data has no bar yet to stamp the order with.
        order = cls(owner=None, data=book.data, size=float(amount), exectype=exectype,
                    price=None if price is None else float(price), pricelimit=None if plimit is None else float(plimit),
                    simulated=True, **trail)  # fmt: skip
        order.p.simulated = False
        order.addinfo(client_order_id=row.client_order_id, reattached=True)
        order.addcomminfo(self.broker.getcommissioninfo(book.data))
        return order

    def restore_links(self) -> None:
        """Rebuild the brackets and OCO groups a previous run left unfinished."""
        assert self.journal is not None
        for group, links in self.journal.active_groups().items():
            self.linked.update(link.client_order_id for link in links)
            try:
                book = self.books.get(links[0].symbol)
                if book is None or book.data is None:
                    self.put_store(f"orders linked to {group} ({links[0].symbol}) belong to no data feed of this "
                                   f"run: they wait for a run that trades {links[0].symbol}")  # fmt: skip
                elif any(link.kind == "oco" for link in links):
                    self._restore_oco(links)
                else:
                    self._restore_bracket(group, links, book)
            except Exception:
                log.exception("live broker: could not restore the orders linked to %s", group)
                self.put_store(f"could not restore the orders linked to {group}: check them on the exchange")

    def _live_or_ended(self, link: JournalLink, book: SymbolBook) -> tuple[bt.Order, bool]:
        """A sent member: its re-attached order if still open, else a stand-in in its final status."""
        tracked = self.orders.get(link.client_order_id)
        if tracked is not None and not tracked.done:
            return tracked.order, False
        assert self.journal is not None
        self.journal.update_link(link.client_order_id, state="done")
        if tracked is not None:
            return tracked.order, True
        jo = self.journal.get_order(link.client_order_id)
        order = self._make_order(link, link.amount or (jo.amount if jo else ZERO), book)
        order.status = FINAL_TO_BT.get(jo.status if jo else "", bt.Order.Canceled)
        return order, True

    def _restore_held(self, link: JournalLink, amount: Decimal, book: SymbolBook) -> bt.Order:
        """A member the broker holds (a child waiting for its parent, an armed stop): Accepted."""
        order = self._make_order(link, amount, book)
        order.submit(self.broker)
        order.accept(self.broker)
        self.broker.notify(order)
        log.info("restored %s bracket order %s (%s %s %s %s)", link.state, link.client_order_id, link.side, amount,
                 link.symbol, link.type)  # fmt: skip
        return order

    def _restore_bracket(self, group: str, links: list[JournalLink], book: SymbolBook) -> None:
        assert self.journal is not None
        parent_link = next((link for link in links if link.kind == "parent"), None)
        children = [link for link in links if link.kind == "child"]
        if parent_link is None or not children:
            for link in links:
                self.journal.update_link(link.client_order_id, state="done")
            return
        parent, parent_ended = self._live_or_ended(parent_link, book)
        bracket = Bracket(parent, [])
        held = [link for link in children if link.state == "held"]
        if held:  # the children never went out: they wait for the parent, as before the restart
            pj = self.journal.get_order(parent_link.client_order_id)
            amount = pj.amount if pj is not None else parent_link.amount or ZERO
            bracket.children = [self._restore_held(link, amount, book) for link in held]
            self._register(bracket)
            if parent_ended:
                filled = pj.filled if pj is not None else ZERO
                self.put_store(f"bracket parent {group} ended while offline ({pj.status if pj else 'unknown'}, "
                               f"filled {filled})")  # fmt: skip
                if parent.status == bt.Order.Completed and not bracket.sent:
                    self._send_children(bracket, filled)
                else:
                    self._bracket_step(parent)
            return
        # The children went out: the live ones carry on, the ended ones end the bracket.
        bracket.sent = True
        # What the exits close: the position's size (a sent exit may be short of it by the fees
        # the exchange took in the coin).
        bracket.amount = max((link.amount for link in children if link.amount), default=ZERO)
        ended = []
        for link in children:
            if link.state in ("armed", "triggered"):
                child = self._restore_held(link, bracket.amount, book)
                if link.state == "armed":
                    bracket.armed[child.ref] = 0
                    # Bars closing after it was armed are watched (on the exchange's clock).
                    armed_ms = self.journal.get_meta(f"armed_ms.{link.client_order_id}")
                    bracket.armed_since[child.ref] = int(armed_ms) if armed_ms else link.updated_ms
                else:
                    bracket.triggered.append(child)
            else:
                child, done = self._live_or_ended(link, book)
                if done:
                    ended.append(child)
            bracket.children.append(child)
        mode = self.broker.bracket_exits
        bracket.native_oco = mode == "oco" and not bracket.armed and not bracket.triggered and len(children) == 2
        self._register(bracket)
        if bracket.triggered:
            for sibling in bracket.children:
                if sibling not in bracket.triggered and sibling.ref not in bracket.armed:
                    bracket.cancelled_for_trigger.add(sibling.ref)
                    self._cancel_member(sibling, f"bracket stop {bracket.triggered[0].ref} triggered")
        for child in ended:
            self._bracket_step(child)
        if self.brackets.get(parent.ref) is bracket:
            self._release_triggered(bracket)

    def _register(self, bracket: Bracket) -> None:
        self.brackets[bracket.parent.ref] = bracket
        for member in (bracket.parent, *bracket.children):
            self.bracket_of[member.ref] = bracket.parent.ref

    def _restore_oco(self, links: list[JournalLink]) -> None:
        assert self.journal is not None
        alive, ended = [], False
        for link in links:
            tracked = self.orders.get(link.client_order_id)
            if tracked is not None and not tracked.done:
                alive.append(tracked.order)
            else:
                ended = True
                self.journal.update_link(link.client_order_id, state="done")
        if ended:  # one ended (or filled) while the process was down: the others go too
            for order in alive:
                self._cancel_member(order, "OCO: another order of its group ended while offline")
            return
        ocos, ocol = self.broker._ocos, self.broker._ocol
        leader = alive[0].ref
        for order in alive:
            ocos[order.ref] = leader
        ocol[leader] = [order.ref for order in alive]
