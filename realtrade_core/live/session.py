"""The live session: wires the journal, the private stream and the workers, and runs the
loop cerebro's thread drives through ``broker.next()``."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import backtrader as bt

from ..errors import ConfigurationError
from ..events import BalanceUpdate, Fill, OrderUpdate
from ..journal import Journal, default_journal_path
from .groups import GroupsMixin
from .io import ExchangeIO
from .ledger import LedgerMixin
from .messages import (
    Ack,
    AuditDone,
    AuditRequest,
    BalanceSnapshot,
    CancelFailed,
    OcoRefused,
    StoreMessage,
    SubmitFailed,
)
from .model import ZERO, Bracket, SymbolBook, Tracked, TrackedOrders, dec
from .orders import OrdersMixin
from .reconcile import ReconcileMixin
from .trailing import TrailingMixin
from .workers import AccountReader, OrderSender

if TYPE_CHECKING:
    from .owner import LiveBroker

log = logging.getLogger(__name__)

_LEDGERS: set[tuple[str, ...]] = set()  # (exchange, venue, market type, account, ledger name) trading now
_LEDGERS_LOCK = threading.Lock()


def _account_id(store: Any) -> str:
    """Which account a store trades, without key material: a short hash of the API key."""
    import hashlib

    key = store.credentials.api_key or ""
    return hashlib.sha256(key.encode()).hexdigest()[:16] if key else "-"


class _Inbox(queue.Queue):
    """The session's inbox: each item put also wakes cerebro's loop (:meth:`Data.wake
    <realtrade_core.feed.Data.wake>` of its live feeds), which would otherwise apply it only
    when a bar comes or its feeds' ``qcheck`` wait ends."""

    def __init__(self) -> None:
        super().__init__()
        self.wakers: list[Callable[[], None]] = []

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        for wake in self.wakers:
            wake()


class LiveSession(ReconcileMixin, OrdersMixin, TrailingMixin, GroupsMixin, LedgerMixin):
    """The live broker's state and logic; see :mod:`realtrade_core.live`. Owned by the Broker."""

    def __init__(self, broker: LiveBroker) -> None:
        self.broker = broker
        self.store = broker.p.store
        self.inbox = _Inbox()
        self.stopping = threading.Event()
        self.journal: Journal | None = None
        self._own_journal = False
        self.io: ExchangeIO | None = None
        self.sender: OrderSender | None = None
        self.reader: AccountReader | None = None
        self.orders = TrackedOrders()  # client order id -> tracked (active and finished)
        self.by_order_id: dict[tuple[str, str], str] = {}  # (symbol, exchange order id) -> client id
        self.books: dict[str, SymbolBook] = {}
        self.balances: dict[str, tuple[Decimal, Decimal]] = {}
        self.currency: str | None = broker.p.currency
        self.parked: dict[tuple[str, str], list[tuple[float, Fill, str]]] = {}  # fills of unacked orders
        self.stream = False  # the private stream is subscribed
        self.stream_up = threading.Event()
        self.stream_down = False
        self.stream_failed = False
        self._unsubscribe: Callable[[], None] | None = None
        self.audit_in_flight = False
        self.last_audit = time.monotonic()
        self.drift_reported: dict[str, Decimal] = {}
        self.started = False
        # Brackets, client-side as BackBroker does: members wait in ``untransmitted`` (parent
        # ref -> orders) until the last one is submitted; the children of a transmitted parent
        # are held (``brackets``: parent ref -> Bracket) until the parent has completely filled.
        self.untransmitted: dict[int, list[bt.Order]] = {}
        self.brackets: dict[int, Bracket] = {}
        self.bracket_of: dict[int, int] = {}  # member order ref -> parent ref
        self.cid_by_ref: dict[int, str] = {}  # order ref -> client order id, for orders sent
        self.linked: set[str] = set()  # client order ids with a link row in the journal
        self.timed: dict[str, Tracked] = {}  # client order id -> an unfinished order with valid=
        # The strategy's own ledger (see LedgerMixin): its cash in ``currency``; positions in books.
        self.ledger_cash: Decimal = ZERO
        self.other_cash: dict[str, Decimal] = {}  # its cash in other markets' quote currencies
        self.unvalued: set[str] = set()  # currencies getvalue() has no price for (reported once)
        self.ledger_key: tuple[str, ...] | None = None
        self.new_ledger = True  # no journal kept this ledger before (set at start)
        self.cerebro: Any = None
        self.trades_to_restore: set[str] = set()  # symbols whose journaled position needs a Trade
        self.foreign_fills: set[str] = set()  # trade ids of fills of orders this broker did not place
        self.refused_fills: set[tuple[str, str]] = set()  # (trade id, why) already reported
        self.asset_prices: dict[str, tuple[Decimal, float]] = {}  # fee currencies' prices, cached
        self.balance_news: dict[str, float] = {}  # asset -> monotonic time of its last stream update

    def start(self) -> None:
        store = self.store
        self._claim_ledger()
        self.io = ExchangeIO(self.broker, self.stopping)
        self.journal = self._open_journal()
        datas = self._cerebro_datas()
        for data in datas:
            self.book_for_data(data, create_position=False)
        self.prepare_account()
        spec = store.spec
        if spec.websocket is not None and spec.capabilities.private_stream:
            self._unsubscribe = store.subscribe_account(self._on_stream)
            self.stream = True
            ws = getattr(store, "_private_ws", None)  # shared with another broker: maybe up already
            if ws is not None and ws.is_connected():
                self.stream_up.set()
            if not self.stream_up.wait(self.broker.p.stream_timeout):
                log.warning("%s: the private stream is not connected after %.0f s; polling orders over REST "
                            "until it is", store.exchange, self.broker.p.stream_timeout)  # fmt: skip
                self.stream_down = True
        else:
            log.info("%s has no private stream here: order status and fills are polled over REST every %.1f s",
                     store.exchange, self.broker.p.poll_interval)  # fmt: skip
        self.balances = self.io.balances()
        self.reconcile()
        self._load_ledger()
        for book in self.books.values():
            self.load_position(book)
        self.trades_to_restore = {symbol for symbol, book in self.books.items() if book.size}
        self.sender = OrderSender(self.io, self.inbox, self.stopping, window=self._unknown_window(),
                                  retries=int(self.broker.p.submit_retries),
                                  journaled=self.journal.written)  # fmt: skip
        self.reader = AccountReader(self.io, self.inbox, self.stopping, refresh=float(self.broker.p.balance_refresh),
                                    client_ids=self._client_id_for)  # fmt: skip
        self.sender.start()
        self.reader.start()
        self.started = True
        self.restore_links()

    def prepare_account(self) -> None:
        """Set the account up for the traded markets before anything else (a spot account
        needs nothing; see :class:`~realtrade_core.live.contracts.PerpetualSession`)."""

    def stop(self) -> None:
        if self.stopping.is_set() and not self.started:
            return  # stopped already (an exception's clean-up, then cerebro's own stop)
        self._send_what_was_asked()
        self.stopping.set()
        if self.ledger_key is not None:
            with _LEDGERS_LOCK:
                _LEDGERS.discard(self.ledger_key)
            self.ledger_key = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for worker in (self.sender, self.reader):
            if worker is not None:
                worker.stop()
        if self.journal is not None and self._own_journal:
            self.journal.close()
        self.started = False

    def _open_journal(self) -> Journal:
        spec = self.broker.p.journal
        store = self.store
        if isinstance(spec, Journal):
            journal = spec
        else:
            if spec is None:
                # An in-process emulator forgets everything when it stops; so does its journal.
                if store.venue == "emulator" and store.emulator is not None:
                    spec = ":memory:"
                else:
                    spec = default_journal_path(store.exchange or "exchange", store.venue, store.credentials.api_key)
            journal = Journal(spec)
            self._own_journal = True
        try:
            for key, value in (("exchange", store.exchange or ""), ("venue", store.venue)):
                known = journal.get_meta(key)
                if known is None:
                    journal.set_meta(key, value)
                elif known != value:
                    raise ConfigurationError(
                        f"the order journal {journal.path} belongs to {key} {known!r}, not {value!r}; "
                        f"give this broker its own journal=<path>"
                    )
            # Another account's journal would have its orders reconciled against this account's
            # (and marked rejected): refuse it before any order is read. A fingerprint, never the key.
            account = store.credentials.fingerprint
            if account is not None:
                journal.claim_account(account, rebind=bool(self.broker.p.rebind_journal))
        except ConfigurationError:
            if self._own_journal:
                journal.close()
            raise
        log.info("%s %s: order journal %s", store.exchange, store.venue, journal.path)
        return journal

    def _send_what_was_asked(self) -> None:
        """Before the workers stop: every order the strategy made (on its last bar too) goes out,
        and the answers that came are applied, so none is dropped; what stays unknown is
        journaled for the next start to resolve, and said."""
        if self.sender is None or self.stopping.is_set():
            return
        timeout = float(self.broker.p.stop_timeout)
        if not self.sender.flush(timeout):
            log.warning("live broker: orders were still being sent after %.0f s at stop", timeout)
        deadline = time.monotonic() + timeout
        while any(not (t.acked or t.done) for t in self.active()) and time.monotonic() < deadline:
            try:
                self.apply(self.inbox.get(timeout=0.05))
            except queue.Empty:
                continue
            except Exception:
                log.exception("live broker: could not apply an answer at stop")
        while True:  # what else came: acknowledgements, fills
            try:
                self.apply(self.inbox.get_nowait())
            except queue.Empty:
                break
            except Exception:
                log.exception("live broker: could not apply an answer at stop")
        for t in self.active():
            if not t.acked and not t.held:
                what = f"order {t.client_order_id} ({t.side} {t.amount} {t.symbol})"
                self.put_store(f"{what}: the run stopped before the exchange answered; the journal keeps it and "
                               f"the next start looks it up")  # fmt: skip

    def _claim_ledger(self) -> None:
        """One ledger name per account and venue in this process: a clash is an error before
        any order (two strategies on one account each need a ``ledger=`` name of their own)."""
        store = self.store
        name = str(self.broker.p.ledger)
        where = store.venue if store.emulator is None else f"emulator {id(store.emulator)}"
        key = (store.exchange or "", where, store.market_type, _account_id(store), name)
        with _LEDGERS_LOCK:
            if key in _LEDGERS:
                raise ConfigurationError(
                    f"another live broker on this {store.exchange} {store.venue} account already trades the ledger "
                    f"{name!r}; give each broker its own: store.getbroker(mode='live', ledger='<name>')"
                )
            _LEDGERS.add(key)
        self.ledger_key = key

    def _load_ledger(self) -> None:
        """The ledger's cash: as its journal left it, else ``cash=`` (default: the quote asset's
        free balance at start). A new ledger's positions start flat (or, with
        ``adopt_holdings=True``, as the account's balances)."""
        assert self.journal is not None
        journal, name = self.journal, str(self.broker.p.ledger)
        known = journal.get_meta("ledger.name")
        if known is not None and known != name:
            raise ConfigurationError(
                f"the order journal {journal.path} belongs to the ledger {known!r}, not {name!r}; "
                f"give this broker its own journal=<path>"
            )
        if self.currency is None:
            self.currency = next((b.quote for b in self.books.values()), None)
        others = sorted({b.quote for b in self.books.values()} - {self.currency})
        both = sorted(set(others) & {b.base for b in self.books.values()})
        if both:
            raise ConfigurationError(
                f"{', '.join(both)} is both a coin this broker's strategy holds and the cash it pays with in another "
                f"market; one ledger cannot keep it as both: trade those markets with two brokers "
                f"(store.getbroker(mode='live', ledger='another name', journal=...))"
            )
        saved = journal.get_meta("ledger.cash")
        if known is not None and saved is not None:
            self.ledger_cash = dec(saved) or ZERO
            self.other_cash = {c: dec(journal.get_meta(f"ledger.cash.{c}")) or ZERO for c in others}
            self.new_ledger = False
            log.info("ledger %r: cash %s %s as the journal left it", name, self.ledger_cash, self.currency)
            return
        cash = self.broker.cash_asked
        if cash is None:
            cash = self.balances.get(self.currency or "", (ZERO, ZERO))[0]
        self.ledger_cash = dec(cash) or ZERO
        given = self.broker.p.quote_cash or {}
        self.other_cash = {c: dec(given[c]) if c in given else self.balances.get(c, (ZERO, ZERO))[0] for c in others}
        self.new_ledger = True
        journal.set_meta("ledger.name", name)
        journal.set_meta("ledger.cash", str(self.ledger_cash))
        for currency, amount in self.other_cash.items():
            journal.set_meta(f"ledger.cash.{currency}", str(amount))
        log.info("ledger %r: starts with %s %s%s", name, self.ledger_cash, self.currency,
                 "".join(f", {a} {c}" for c, a in self.other_cash.items()))  # fmt: skip

    def _unknown_window(self) -> float:
        window = self.broker.p.unknown_outcome_window
        if window is not None:
            return float(window)
        recv = (getattr(self.store.client, "options", {}) or {}).get("recvWindow")
        try:
            return max(5.0, float(recv) / 1000 + 2.0)
        except (TypeError, ValueError):
            return 12.0

    def _cerebro_datas(self) -> list[Any]:
        # broker.start() is called by cerebro.runstrategies: find that cerebro the way backtrader
        # finds owners, so positions and re-attached orders know their data before the first bar.
        cerebro = self.cerebro = bt.metabase.findowner(self.broker, bt.Cerebro)
        if cerebro is None:
            return []
        from ..feed import Data

        # What the workers and streams put in the inbox wakes cerebro's loop for a broker pass.
        self.inbox.wakers = [d.wake for d in cerebro.datas if isinstance(d, Data)]
        return [d for d in cerebro.datas if getattr(getattr(d, "p", None), "store", None) is self.store]

    def symbol_of(self, data: Any) -> str:
        symbol = getattr(data, "_symbol", None)
        if symbol:
            return symbol
        name = getattr(data.p, "dataname", None)
        if isinstance(name, str):
            return self.store.market(name)["symbol"]
        if name is not None and hasattr(name, "p"):  # a DataClone: dataname is the original feed
            return self.symbol_of(name)
        raise ConfigurationError(f"cannot tell which market data {data._name!r} trades; use store.getdata()")

    def book_for_data(self, data: Any, *, create_position: bool = True) -> SymbolBook:
        symbol = self.symbol_of(data)
        book = self.books.get(symbol)
        if book is None:
            market = self.store.market(symbol)
            book = SymbolBook(symbol, market["base"], market["quote"], data=data)
            self.books[symbol] = book
            if self.currency is None:
                self.currency = market["quote"]
            if create_position and self.started:
                self.load_position(book)
        elif book.data is None:
            book.data = data
        return book

    def _on_stream(self, item: Any) -> None:
        """Runs on the WebSocket thread: only enqueue."""
        if isinstance(item, tuple) and item and item[0] == "connected":
            self.stream_up.set()
        self.inbox.put(item)

    def next(self) -> None:
        if self.trades_to_restore:
            self._restore_trades()
        self._read_prices()
        self._check_armed()
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                break
            try:
                self.apply(item)
            except Exception:  # one odd event must not stop the strategy
                log.exception("live broker: could not apply %s", type(item).__name__)
        self._expire_orders()
        self._trail_stops()
        self._housekeeping()

    def apply(self, item: Any) -> None:
        if isinstance(item, Fill):
            self.apply_fill(item, "stream")
        elif isinstance(item, OrderUpdate):
            self.apply_update(item)
        elif isinstance(item, BalanceUpdate):
            for asset, free, locked in item.balances:
                self.balances[asset] = (free, locked)
                self.balance_news[asset] = time.monotonic()  # the stream's word comes after its fills
            self.check_ceiling()
        elif isinstance(item, tuple) and len(item) == 2 and item[0] == "rest_fill":
            self.apply_fill(item[1], "rest")
        elif isinstance(item, Ack):
            self.apply_ack(item)
        elif isinstance(item, SubmitFailed):
            self.apply_submit_failed(item)
        elif isinstance(item, OcoRefused):
            self.apply_oco_refused(item)
        elif isinstance(item, CancelFailed):
            tracked = self.orders.get(item.client_order_id)
            if tracked is not None:
                tracked.cancelling = False  # the strategy may cancel again; validity retries next bar
            log.warning("cancel of %s failed: %s", item.client_order_id, item.reason)
            self.put_store(f"cancel of order {item.client_order_id} failed: {item.reason}")
        elif isinstance(item, BalanceSnapshot):
            self.balances.update(item.balances)
            for asset in item.balances:  # as of when it was asked for, not when it arrived
                self.balance_news[asset] = max(self.balance_news.get(asset, 0.0), item.asked)
            self.check_ceiling()
        elif isinstance(item, AuditDone):
            self.audit_in_flight = False
        elif isinstance(item, StoreMessage):
            self.put_store(item.message)
        elif isinstance(item, tuple) and len(item) == 2:
            self.apply_connection(*item)

    def apply_connection(self, kind: str, reason: str) -> None:
        if kind == "connected":
            if self.stream_down:
                # Events may have been lost while the stream was down: check every open order now.
                self.stream_down = False
                self.request_audit(force=True)
        elif kind == "disconnected":
            self.stream_down = True
        elif kind == "failed":
            self.stream_down = self.stream_failed = True
            self.put_store(f"private stream gave up ({reason}); polling orders over REST every "
                           f"{self.broker.p.poll_interval} s")  # fmt: skip

    def polling(self) -> bool:
        return not self.stream or self.stream_down or self.stream_failed

    def active(self) -> list[Tracked]:
        return self.orders.open()

    def request_audit(self, *, force: bool = False, orders: Iterable[Tracked] | None = None) -> None:
        if self.audit_in_flight or self.reader is None:
            return
        chosen = [t for t in (orders if orders is not None else self.active()) if t.order_id and not t.done]
        if not chosen and not force:
            return
        self.audit_in_flight = True
        self.last_audit = time.monotonic()
        items = tuple((t.client_order_id, t.order_id, t.symbol, t.created_ms) for t in chosen)
        self.reader.put(AuditRequest(items, fetch_balance=force or self.polling()))

    def _housekeeping(self) -> None:
        now = time.monotonic()
        p = self.broker.p
        self.check_ceiling()  # also once a fill's settling time has passed, not only on balance news
        # Fills of unacknowledged orders that nobody claimed: they are someone else's.
        for key, items in list(self.parked.items()):
            if items and now - items[0][0] > max(10.0, float(p.fill_grace)):
                del self.parked[key]
                for _, fill, source in items:
                    self.apply_fill(fill, source)
        active = self.active()
        if not active:
            return
        for t in active:
            if t.waiting_sibling is not None:
                self._progress(t)
        grace, ceiling = float(p.fill_grace), max(float(p.fill_grace), float(p.audit_interval))
        stuck = [
            t for t in active
            if t.waiting_since is not None and now - t.waiting_since > min(grace * 2 ** min(t.audits, 10), ceiling)
        ]  # fmt: skip
        if stuck and not self.audit_in_flight:
            for t in stuck:
                t.audits += 1
                t.waiting_since = now
            self.request_audit(orders=stuck)
            return
        interval = float(p.poll_interval) if self.polling() else float(p.audit_interval)
        if now - self.last_audit >= interval:
            self.request_audit()

    def put_store(self, message: str) -> None:
        log.info("%s: %s", self.store.exchange, message)
        self.store.put_notification(message)

    def _hook(self, event: Any) -> None:
        from ..host import get_plugin_host

        get_plugin_host().order_event(self.store.exchange or "", event)

    def _client_id_for(self, order_id: str) -> str | None:
        # Called from the account reader thread: the journal is thread-safe, the dicts are not.
        if self.journal is None:
            return None
        jo = self.journal.find_order(order_id)
        return jo.client_order_id if jo else None
