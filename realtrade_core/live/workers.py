"""The live broker's worker threads: the order sender, the resolver of unknown outcomes and the
account reader.

They only talk to the exchange and put typed records on the session's inbox; cerebro's thread
applies them. The sender sends creates and cancels one at a time, in the strategy's order; a
request whose answer was lost (a timeout, a 5xx) goes to the :class:`Resolver`, which looks it up
by client order id in the background while the sender carries on with the next one."""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import retry
from ..events import OrderStatus, OrderUpdate, Side
from ..execution import ErrorKind
from .io import ExchangeIO
from .messages import (
    Ack,
    AuditDone,
    AuditRequest,
    BalanceSnapshot,
    CancelFailed,
    CancelRequest,
    CreateRequest,
    OcoRefused,
    OcoRequest,
    StoreMessage,
    SubmitFailed,
)
from .model import STOP_TYPES, dec, now_ms, triggered_type

log = logging.getLogger(__name__)

#: a cancel whose answer is lost this many times in a row (the order still open) is reported failed
CANCEL_ATTEMPTS = 6


class _Worker(threading.Thread):
    def __init__(self, name: str, io: ExchangeIO, inbox: queue.Queue, stopping: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.io = io
        self.inbox = inbox
        self.stopping = stopping
        self.tasks: queue.Queue = queue.Queue()

    def put(self, task: Any) -> None:
        self.tasks.put(task)

    def stop(self) -> None:
        self.tasks.put(None)
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=10)

    def emit(self, item: Any) -> None:
        self.inbox.put(item)

    def timeout(self) -> float | None:
        return None

    def tick(self) -> None:
        """Periodic work when :meth:`timeout` passed without a task."""

    def run(self) -> None:
        while not self.stopping.is_set():
            timeout = self.timeout()
            if timeout is not None and timeout <= 0:
                task = _TICK  # due: a steady stream of tasks must not starve the periodic work
            else:
                try:
                    task = self.tasks.get(timeout=timeout)
                except queue.Empty:
                    task = _TICK
            if task is None or self.stopping.is_set():
                return
            try:
                if task is _TICK:
                    self.tick()
                else:
                    self.handle(task)
            except Exception as exc:  # a bug or an unexpected reply must not kill the thread
                log.exception("%s: %s failed", self.name, type(task).__name__)
                self.emit(StoreMessage(f"{self.name}: {type(task).__name__} failed: {self.io.scrub(exc)}"))

    def handle(self, task: Any) -> None:
        raise NotImplementedError


_TICK = object()


@dataclass(frozen=True)
class _Flush:
    """Set ``done`` once every request queued before it has been handled (see ``flush``)."""

    done: threading.Event


@dataclass(frozen=True)
class _Again:
    """A request sent again by the sender: a create (or OCO list) confirmed absent after its
    answer was lost, or a cancel whose answer was lost while the order is still open."""

    request: CreateRequest | OcoRequest | CancelRequest
    tries: int  # sends so far (creates) / cancel attempts so far
    kind: str | None = None  # the order type a create goes as (a crossed stop goes as what it triggers)


class OrderSender(_Worker):
    """Creates and cancels orders, in the strategy's order. A request whose outcome is unknown
    is handed to its :class:`Resolver`, so one lost answer never holds up the orders after it."""

    def __init__(self, io: ExchangeIO, inbox: queue.Queue, stopping: threading.Event, *, window: float,
                 retries: int, journaled: Callable[[], None] = lambda: None) -> None:  # fmt: skip
        super().__init__(f"realtrade-orders-{io.exchange}", io, inbox, stopping)
        self.window = window
        self.retries = retries
        self.journaled = journaled  # returns once the journal holds what was queued (Journal.written)
        self.order_ids: dict[str, str] = {}  # client order id -> exchange order id, as the workers learnt them
        self.resending: set[str] = set()  # client order ids confirmed absent, queued to be sent again
        self.resolver = Resolver(self)

    def start(self) -> None:
        super().start()
        self.resolver.start()

    def stop(self) -> None:
        self.resolver.stop()
        super().stop()

    def flush(self, timeout: float) -> bool:
        """Wait until every request queued so far has been sent (or handed to the resolver):
        True when it has, False on ``timeout``."""
        if not self.is_alive():
            return self.tasks.empty()
        done = threading.Event()
        self.put(_Flush(done))
        return done.wait(timeout)

    def handle(self, task: Any) -> None:
        if isinstance(task, _Flush):
            task.done.set()
            return
        if isinstance(task, _Again):
            task, tries, kind = task.request, task.tries, task.kind
        else:
            tries, kind = 0, None
        self.journaled()
        if isinstance(task, CreateRequest):
            self.create(task, tries, kind)
        elif isinstance(task, OcoRequest):
            self.create_oco(task, tries)
        elif isinstance(task, CancelRequest):
            self.cancel(task, tries)

    # --- create ------------------------------------------------------------------------------------

    def create(self, req: CreateRequest, tries: int = 0, kind: str | None = None) -> None:
        import ccxt

        try:
            client = self.io.client
            if kind is None:
                kind = req.type
                if kind in STOP_TYPES and self.io.dialect.stop_direction_from_market and self.already_crossed(req):
                    kind = triggered_type(kind)
            ccxt_type, price, params = self.create_args(req, kind)
            rate_limited = 0
            delay = 0.5
            while not self.stopping.is_set():
                tries += 1
                self.io.gate.wait(self.stopping)
                sent = time.monotonic()
                try:
                    answer = client.create_order(req.symbol, ccxt_type, req.side, float(req.amount), price,
                                                 dict(params))  # fmt: skip
                except ccxt.BaseError as exc:
                    error = self.io.dialect.classify(exc)
                    if error is ErrorKind.RATE_LIMITED:
                        # 429/418: refused, not executed. Wait as asked, make sure, then send again.
                        rate_limited += 1
                        self.io.backoff_rate_limit(exc, delay)
                        delay = min(delay * 2, retry.BACKOFF_CAP)
                        found = self.lookup_now(req)
                        if found is not None:
                            self.acknowledge(req, found)
                            return
                        if rate_limited > max(3, self.retries):
                            why = self.io.scrub(exc)
                            reason = f"rate limited by {self.io.exchange} {rate_limited} times; not sent: {why}"
                            self.emit(SubmitFailed(req.client_order_id, reason))
                            return
                        tries -= 1  # a refusal is not a lost request
                        continue
                    if error is ErrorKind.UNKNOWN_OUTCOME:
                        # Timeout, 5xx, connection reset, an unreadable answer: the order may or may
                        # not exist. The resolver looks it up by client order id until the exchange
                        # could no longer accept the lost request; the next orders go meanwhile.
                        if isinstance(exc, ccxt.InvalidNonce):
                            self.io.resync_time()
                        log.warning("%s: create %s ended without an answer (%s); looking it up by client order id",
                                    self.io.exchange, req.client_order_id, self.io.scrub(exc)[:200])  # fmt: skip
                        self.resolver.add(_Pending(req, sent, exc, tries, kind))
                        return
                    if error is ErrorKind.STOP_CROSSED and kind in STOP_TYPES:
                        # The market has passed the stop price already: backtrader fills such a
                        # stop at the next price, so it goes as the order it triggers into.
                        kind = triggered_type(kind)
                        ccxt_type, price, params = self.create_args(req, kind)
                        tries = 0
                        log.info("%s: stop order %s would trigger immediately (%s); sending it as a %s order",
                                 self.io.exchange, req.client_order_id, self.exchange_message(exc), kind)  # fmt: skip
                        continue
                    # Refused: InsufficientFunds (the order ends Margin), InvalidOrder...
                    self.emit(SubmitFailed(req.client_order_id, f"{type(exc).__name__}: {self.exchange_message(exc)}",
                                           margin=error is ErrorKind.INSUFFICIENT_FUNDS))  # fmt: skip
                    return
                self.acknowledge(req, answer)
                return
        finally:
            self.resending.discard(req.client_order_id)

    def create_oco(self, req: OcoRequest, tries: int = 0) -> None:
        """Send an OCO list; an unknown outcome is resolved by looking its legs up, as for one
        order. A refusal comes back as :class:`OcoRefused` (the session then falls back)."""
        import ccxt

        legs = (req.limit, req.stop)
        rate_limited = 0
        delay = 0.5
        try:
            while not self.stopping.is_set():
                tries += 1
                self.io.gate.wait(self.stopping)
                sent = time.monotonic()
                try:
                    answers = self.io.dialect.create_oco_orders(
                        self.io.client, req.limit.symbol, req.limit.side, req.limit.amount, req.limit.price,
                        req.stop.stop_price, req.stop.price, req.limit.client_order_id, req.stop.client_order_id,
                    )  # fmt: skip
                except ccxt.BaseError as exc:
                    error = self.io.dialect.classify(exc)
                    if error is ErrorKind.RATE_LIMITED:
                        rate_limited += 1
                        self.io.backoff_rate_limit(exc, delay)
                        delay = min(delay * 2, retry.BACKOFF_CAP)
                        found = self.lookup_now(req.limit)
                        if found is not None:
                            self.acknowledge(req.limit, found)
                            self.acknowledge_other_leg(req.stop)
                            return
                        if rate_limited > max(3, self.retries):
                            self.emit(OcoRefused(req, f"rate limited by {self.io.exchange} {rate_limited} times"))
                            return
                        tries -= 1
                        continue
                    if error is ErrorKind.UNKNOWN_OUTCOME:
                        if isinstance(exc, ccxt.InvalidNonce):
                            self.io.resync_time()
                        log.warning("%s: OCO %s/%s ended without an answer (%s); looking it up by client order id",
                                    self.io.exchange, req.limit.client_order_id, req.stop.client_order_id,
                                    self.io.scrub(exc)[:200])  # fmt: skip
                        self.resolver.add(_Pending(req, sent, exc, tries))
                        return
                    self.emit(OcoRefused(req, f"{type(exc).__name__}: {self.exchange_message(exc)}"))
                    return
                for leg, answer in zip(legs, answers, strict=True):
                    self.acknowledge(leg, answer)
                return
        finally:
            self.resending.discard(req.limit.client_order_id)

    def lookup_now(self, req: CreateRequest) -> dict | None:
        """One lookup of ``req`` by client order id, retried until the exchange answers (after a
        429 the order was refused, not executed: this only makes sure)."""
        try:
            return self.io.read(self.io.find_order, req.symbol, req.client_order_id, since=req.created_ms,
                                patience=None)  # fmt: skip
        except Exception as exc:
            if self.stopping.is_set():
                return None
            raise RuntimeError(f"order {req.client_order_id}: cannot be looked up ({self.io.scrub(exc)})") from exc

    def acknowledge_other_leg(self, leg: CreateRequest) -> None:
        """An OCO list exists: find its second leg."""
        try:
            found = self.io.read(self.io.find_order, leg.symbol, leg.client_order_id, since=leg.created_ms,
                                 patience=None)  # fmt: skip
        except Exception as exc:
            if self.stopping.is_set():
                return
            found = None
            log.warning("%s: OCO leg %s could not be looked up: %s", self.io.exchange, leg.client_order_id,
                        self.io.scrub(exc)[:200])  # fmt: skip
        if found is not None:
            self.acknowledge(leg, found)
        else:
            self.emit(SubmitFailed(leg.client_order_id, "its OCO list exists but this leg was not found"))

    def already_crossed(self, req: CreateRequest) -> bool:
        """Whether the exchange's last price has already crossed the stop price of ``req``.

        For exchanges that take a stop's trigger direction from the last price: a
        buy stop under the market would be accepted to fire on a fall, a sell stop above it on a
        rise, where backtrader fills both at the next price.
        """
        try:
            ticker = self.io.read(self.io.client.fetch_ticker, req.symbol)
        except Exception as exc:
            log.warning("%s: no last price to check stop %s against (%s); sending it as a stop",
                        self.io.exchange, req.client_order_id, self.io.scrub(exc)[:200])  # fmt: skip
            return False
        last = dec(ticker.get("last") or ticker.get("close"))
        if last is None or req.stop_price is None:
            return False
        crossed = last >= req.stop_price if req.fires_on_rise else last <= req.stop_price
        if crossed:
            log.info("%s: stop order %s at %s is already crossed by the last price %s; sending it as a %s order",
                     self.io.exchange, req.client_order_id, req.stop_price, last, triggered_type(req.type))  # fmt: skip
        return crossed

    def create_args(self, req: CreateRequest, kind: str) -> tuple[str, float | None, dict[str, Any]]:
        """ccxt's order type, price and params to create ``req`` as an order of ``kind``."""
        ccxt_type = "limit" if kind in ("limit", "stop_limit") else "market"
        price = float(req.price) if req.price is not None and ccxt_type == "limit" else None
        params: dict[str, Any] = {"clientOrderId": req.client_order_id}
        if kind in STOP_TYPES and req.stop_price is not None:
            params["triggerPrice"] = float(req.stop_price)
        if req.reduce_only:
            params["reduceOnly"] = True
        params.update(self.io.dialect.create_order_params(kind, req.side))
        if self.io.contracts:
            params.update(self.io.dialect.contract_order_params(kind, req.side, req.fires_on_rise))
        return ccxt_type, price, params

    def exchange_message(self, exc: BaseException) -> str:
        """The exchange's own words (``msg`` / ``retMsg``) when the error carries its JSON."""
        text = self.io.scrub(exc)
        match = re.search(r'"(?:msg|retMsg)"\s*:\s*"([^"]*)"', text)
        return match.group(1) if match else text

    def acknowledge(self, req: CreateRequest, answer: dict[str, Any]) -> None:
        """The exchange has ``req`` (its answer, or a lookup): tell cerebro's thread. Called from
        the sender and from the resolver."""
        order_id = str(answer.get("id"))
        self.order_ids[req.client_order_id] = order_id
        update = self.io.order_update(answer, symbol=req.symbol)
        self.emit(Ack(req.client_order_id, order_id, update))

    # --- cancel -------------------------------------------------------------------------------------

    def cancel(self, req: CancelRequest, attempts: int = 0) -> None:
        import ccxt

        client = self.io.client
        order_id = req.order_id or self.order_ids.get(req.client_order_id)
        if order_id is None:
            if self.resolver.defer_cancel(req):
                return  # its create's outcome is being resolved: the cancel follows the answer
            if req.client_order_id in self.resending:
                self.put(req)  # confirmed absent and queued to go again: cancel it once it has
                return
            found = self.io.read(self.io.find_order, req.symbol, req.client_order_id, since=req.created_ms)
            if found is None:
                self.emit(CancelFailed(req.client_order_id, "the order is not on the exchange"))
                return
            order_id = str(found.get("id"))
        for params in self.io.cancel_param_sets(req.type):
            while not self.stopping.is_set():
                self.io.gate.wait(self.stopping)
                sent = time.monotonic()
                try:
                    answer = client.cancel_order(order_id, req.symbol, dict(params))
                except ccxt.OrderNotFound:
                    break  # try the next parameter set, then look the order up
                except ccxt.BaseError as exc:
                    error = self.io.dialect.classify(exc)
                    if error is ErrorKind.RATE_LIMITED:
                        self.io.backoff_rate_limit(exc, 1.0)
                        continue  # a cancel is idempotent: repeating it is safe
                    if error is ErrorKind.UNKNOWN_OUTCOME:
                        # The answer is lost: whether the order is cancelled is looked up in the
                        # background (and the cancel sent again while it is open).
                        log.warning("%s: cancel of %s ended without an answer (%s); looking the order up",
                                    self.io.exchange, req.client_order_id, self.io.scrub(exc)[:200])  # fmt: skip
                        with_id = CancelRequest(req.client_order_id, req.symbol, req.type, order_id, req.created_ms)
                        self.resolver.add(_Pending(with_id, sent, exc, attempts + 1))
                        return
                    self.emit(CancelFailed(req.client_order_id, f"{type(exc).__name__}: {self.io.scrub(exc)}"))
                    return
                update = self.io.order_update(answer, symbol=req.symbol)
                if update is None or update.status.is_open:
                    self.report_state(req, order_id)  # the answer held no final state: ask
                else:
                    self.emit(update)
                return
        # Not cancelable: it filled, was canceled or expired meanwhile. Report what it is.
        if not self.report_state(req, order_id):
            self.emit(CancelFailed(req.client_order_id, "the exchange does not know the order"))

    def report_state(self, req: CancelRequest, order_id: str) -> bool:
        found = self.io.read(self.io.find_order, req.symbol, req.client_order_id, order_id, since=req.created_ms)
        update = self.io.order_update(found, symbol=req.symbol) if found else None
        if update is None:
            return False
        self.emit(update)
        return True


@dataclass(eq=False)
class _Pending:
    """A request whose answer was lost, waiting for the resolver to find out what became of it."""

    request: CreateRequest | OcoRequest | CancelRequest
    sent: float  # time.monotonic() of the lost request
    error: BaseException
    tries: int  # sends so far (creates) / cancel attempts so far
    kind: str | None = None  # the order type the create went as
    cancel: CancelRequest | None = None  # the strategy cancelled the order meanwhile
    lookups: int = 0  # failed lookups in a row (they back off)
    due: float = field(default_factory=time.monotonic)
    warned: bool = False

    @property
    def key(self) -> str:
        return self.first.client_order_id

    @property
    def first(self) -> CreateRequest | CancelRequest:
        return self.request.limit if isinstance(self.request, OcoRequest) else self.request


class Resolver(threading.Thread):
    """Finds out, in the background, what became of requests whose answer was lost.

    A create (or OCO list) is looked up by client order id until it is found (acknowledged) or,
    in an answer given at least ``window`` seconds after it was sent (when the exchange can no
    longer accept the lost request), confirmed absent: then it goes back to the sender to be sent
    again with the same client order id, at most ``retries`` times. A lookup that fails is retried
    with backoff, without limit: an order is declared absent only by an answer, never by silence.
    A cancel whose answer was lost is resolved by the order's state: ended (reported), or still
    open (the cancel is sent again). Many requests are resolved side by side.
    """

    def __init__(self, sender: OrderSender) -> None:
        super().__init__(name=f"realtrade-resolver-{sender.io.exchange}", daemon=True)
        self.sender = sender
        self.io = sender.io
        self.stopping = sender.stopping
        self.tasks: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self.pending: dict[str, _Pending] = {}

    def add(self, item: _Pending) -> None:
        with self._lock:
            self.pending[item.key] = item
        self.tasks.put(item)

    def defer_cancel(self, req: CancelRequest) -> bool:
        """Attach the strategy's cancel to a create being resolved; False if there is none."""
        with self._lock:
            for item in self.pending.values():
                request = item.request
                legs = (request.limit, request.stop) if isinstance(request, OcoRequest) else (request,)
                if isinstance(request, CancelRequest):
                    continue
                if any(leg.client_order_id == req.client_order_id for leg in legs):
                    if item.cancel is None:  # an OCO list: cancelling one leg ends the list
                        item.cancel = req
                    return True
        return False

    def stop(self) -> None:
        self.tasks.put(None)
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=10)

    def emit(self, item: Any) -> None:
        self.sender.emit(item)

    def run(self) -> None:
        while not self.stopping.is_set():
            with self._lock:
                due = [p for p in self.pending.values() if p.due <= time.monotonic()]
                nearest = min((p.due for p in self.pending.values()), default=None)
            for item in due:
                if self.stopping.is_set():
                    return
                try:
                    done = self.step(item)
                except Exception as exc:  # a bug or an odd answer must not stop the resolving
                    log.exception("%s: resolving %s failed", self.name, item.key)
                    self.emit(StoreMessage(f"{self.name}: resolving {item.key} failed: {self.io.scrub(exc)}"))
                    done = False
                    item.due = time.monotonic() + retry.BACKOFF_CAP
                if done:
                    with self._lock:
                        if self.pending.get(item.key) is item:
                            del self.pending[item.key]
            if due:
                continue
            timeout = None if nearest is None else max(0.0, nearest - time.monotonic())
            try:
                task = self.tasks.get(timeout=timeout)
            except queue.Empty:
                continue
            if task is None:
                return

    def lookup(self, item: _Pending, req: CreateRequest | CancelRequest,
               order_id: str | None = None) -> tuple[bool, dict | None]:  # fmt: skip
        """(answered, found): one lookup by client order id; a failure backs the item off."""
        self.io.gate.wait(self.stopping)
        try:
            found = self.io.find_order(req.symbol, req.client_order_id, order_id, since=req.created_ms)
        except Exception as exc:
            item.lookups += 1
            # As long as the exchange asks after a rate limit (and every call waits with us), else backoff.
            item.due = time.monotonic() + retry.wait_after(self.io.store, exc, item.lookups)
            if not item.warned and time.monotonic() - item.sent > self.sender.window + 10:
                item.warned = True
                self.emit(StoreMessage(f"order {req.client_order_id}: outcome still unknown, the exchange "
                                       f"cannot be asked ({self.io.scrub(exc)[:200]}); still trying"))  # fmt: skip
            return False, None
        item.lookups = 0
        return True, found

    def step(self, item: _Pending) -> bool:
        """One look at ``item``; True when it is resolved."""
        if isinstance(item.request, CancelRequest):
            return self.step_cancel(item, item.request)
        answered, found = self.lookup(item, item.first)
        if not answered:
            return False
        if found is not None:
            self.found(item, found)
            return True
        elapsed = time.monotonic() - item.sent
        window = self.sender.window
        if elapsed < window:
            # Absent for now, but the lost request may still reach the exchange: ask again.
            item.due = time.monotonic() + min(retry.backoff(1), max(0.05, window - elapsed))
            return False
        self.absent(item)
        return True

    def found(self, item: _Pending, answer: dict) -> None:
        request, sender = item.request, self.sender
        if isinstance(request, OcoRequest):
            sender.acknowledge(request.limit, answer)
            sender.acknowledge_other_leg(request.stop)
        else:
            sender.acknowledge(request, answer)
        if item.cancel is not None:  # the strategy cancelled it meanwhile: now it can be
            cancel = item.cancel
            sender.put(CancelRequest(cancel.client_order_id, cancel.symbol, cancel.type,
                                     sender.order_ids.get(cancel.client_order_id), cancel.created_ms))  # fmt: skip

    def absent(self, item: _Pending) -> None:
        """Confirmed absent after the window: send again, or give up, or (cancelled meanwhile) end it."""
        request, sender, exc = item.request, self.sender, item.error
        legs = (request.limit, request.stop) if isinstance(request, OcoRequest) else (request,)
        if item.cancel is not None:
            for leg in legs:
                self.emit(self.never_placed(leg))
            return
        if item.tries > sender.retries:
            reason = (f"{self.io.exchange} did not answer ({type(exc).__name__}: {self.io.scrub(exc)[:200]}); "
                      f"confirmed absent (looked up by client order id); gave up after {item.tries} tries")  # fmt: skip
            if isinstance(request, OcoRequest):
                self.emit(OcoRefused(request, reason))
            else:
                self.emit(SubmitFailed(request.client_order_id, reason))
            return
        log.warning("%s: order %s confirmed absent after %s; sending it again (same client order id)",
                    self.io.exchange, item.key, type(exc).__name__)  # fmt: skip
        sender.resending.add(item.key)
        sender.put(_Again(request, item.tries, item.kind))

    def never_placed(self, req: CreateRequest) -> OrderUpdate:
        """The end of an order cancelled while its lost create was being resolved, and confirmed
        absent: it never reached the exchange, so it is Canceled without being sent again."""
        return OrderUpdate(
            exchange=self.io.exchange, order_id="", client_order_id=req.client_order_id, symbol=req.symbol,
            side=Side.BUY if req.side == "buy" else Side.SELL, type=req.type, status=OrderStatus.CANCELED,
            price=req.price, amount=req.amount, filled=dec(0), average=None,
            reason="cancelled before it reached the exchange", time=self.io.exchange_ms(), stop_price=req.stop_price,
        )  # fmt: skip

    def step_cancel(self, item: _Pending, req: CancelRequest) -> bool:
        answered, found = self.lookup(item, req, req.order_id)
        if not answered:
            return False
        update = self.io.order_update(found, symbol=req.symbol) if found else None
        if update is None:
            self.emit(CancelFailed(req.client_order_id, "the exchange does not know the order"))
        elif not update.status.is_open:
            self.emit(update)  # cancelled (or filled meanwhile): what it became
        elif item.tries >= CANCEL_ATTEMPTS:
            self.emit(CancelFailed(req.client_order_id, f"cancel not confirmed after {item.tries} tries: "
                                                        f"{self.io.scrub(item.error)[:200]}"))  # fmt: skip
        else:
            self.sender.put(_Again(req, item.tries))  # still open: a cancel is idempotent, send it again
        return True


class AccountReader(_Worker):
    """Balances every ``refresh`` seconds, and REST audits of open orders when asked."""

    def __init__(self, io: ExchangeIO, inbox: queue.Queue, stopping: threading.Event, *, refresh: float,
                 client_ids: Callable[[str], str | None]) -> None:  # fmt: skip
        super().__init__(f"realtrade-account-{io.exchange}", io, inbox, stopping)
        self.refresh = refresh
        self.client_ids = client_ids  # order id -> client order id, from the journal
        self.next_refresh = time.monotonic() + refresh

    def timeout(self) -> float | None:
        return max(0.0, self.next_refresh - time.monotonic())

    def tick(self) -> None:
        self.next_refresh = time.monotonic() + self.refresh
        self.refresh_balances()

    def refresh_balances(self) -> None:
        try:
            asked = time.monotonic()
            self.emit(BalanceSnapshot(self.io.balances(), now_ms(), asked))
        except Exception as exc:
            log.warning("%s: balance refresh failed: %s", self.io.exchange, self.io.scrub(exc)[:300])

    def handle(self, task: Any) -> None:
        if isinstance(task, AuditRequest):
            try:
                self.audit(task)
            finally:
                self.emit(AuditDone())

    def audit(self, task: AuditRequest) -> None:
        """Fetch the fills and the state of the given orders; emit them as events."""
        by_symbol: dict[str, list[tuple[str, str | None, str, int]]] = {}
        for item in task.orders:
            by_symbol.setdefault(item[2], []).append(item)
        for symbol, items in by_symbol.items():
            ids = {oid for _, oid, _, _ in items if oid}
            since = min(created for *_, created in items) - 60_000
            trades = self.io.trades_since(symbol, max(0, since))
            log.debug("%s: audit of %d %s order(s) from %s: %d trade(s)", self.io.exchange, len(items), symbol, since,
                      len(trades))  # fmt: skip
            for t in trades:
                if str(t.get("order")) in ids:
                    self.emit(("rest_fill", self.io.fill(t, self.client_ids(str(t.get("order"))))))
            open_orders = {str(o.get("id")): o for o in self.io.read(self.io.open_orders, symbol)}
            for cid, oid, _, created in items:
                found = open_orders.get(str(oid)) if oid else None
                if found is None:
                    found = self.io.read(self.io.find_order, symbol, cid, oid, created)
                update = self.io.order_update(found, symbol=symbol) if found else None
                if update is not None:
                    self.emit(update)
        if task.fetch_balance:
            self.refresh_balances()
