"""The live broker's worker threads: the order sender and the account reader.

They only talk to the exchange and put typed records on the session's inbox; cerebro's thread
applies them."""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from .io import ExchangeIO, rate_limit_errors
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


class OrderSender(_Worker):
    """Creates and cancels orders, in the strategy's order, and resolves unknown outcomes."""

    def __init__(self, io: ExchangeIO, inbox: queue.Queue, stopping: threading.Event, *, window: float,
                 retries: int) -> None:  # fmt: skip
        super().__init__(f"realtrade-orders-{io.exchange}", io, inbox, stopping)
        self.window = window
        self.retries = retries
        self.order_ids: dict[str, str] = {}  # client order id -> exchange order id, as this thread learnt them

    def handle(self, task: Any) -> None:
        if isinstance(task, CreateRequest):
            self.create(task)
        elif isinstance(task, OcoRequest):
            self.create_oco(task)
        elif isinstance(task, CancelRequest):
            self.cancel(task)

    # --- create ------------------------------------------------------------------------------------

    def create(self, req: CreateRequest) -> None:
        import ccxt

        client = self.io.client
        kind = req.type
        if kind in STOP_TYPES and self.io.broker.stop_direction_from_market and self.already_crossed(req):
            kind = triggered_type(kind)
        ccxt_type, price, params = self.create_args(req, kind)
        tries = 0
        rate_limited = 0
        delay = 0.5
        while not self.stopping.is_set():
            tries += 1
            self.io.gate.wait(self.stopping)
            sent = time.monotonic()
            try:
                answer = client.create_order(req.symbol, ccxt_type, req.side, float(req.amount), price, dict(params))
            except rate_limit_errors() as exc:
                # 429/418: refused, not executed. Wait as asked, make sure, then send again.
                rate_limited += 1
                self.io.backoff_rate_limit(exc, delay)
                delay = min(delay * 2, 30.0)
                found = self.resolve(req, sent, exc, window=0.0)
                if found is not None:
                    self.acknowledge(req, found)
                    return
                if rate_limited > max(3, self.retries):
                    self.emit(SubmitFailed(req.client_order_id, f"rate limited by {self.io.exchange} "
                                           f"{rate_limited} times; not sent: {self.io.scrub(exc)}"))  # fmt: skip
                    return
                continue
            except (ccxt.OperationFailed, ccxt.BadResponse) as exc:
                # Timeout, 5xx, connection reset, an unreadable answer: the order may or may not
                # exist. Look it up by client order id until the exchange could no longer accept
                # the lost request.
                if isinstance(exc, ccxt.InvalidNonce):
                    self.io.resync_time()
                log.warning("%s: create %s ended without an answer (%s); looking it up by client order id",
                            self.io.exchange, req.client_order_id, self.io.scrub(exc)[:200])  # fmt: skip
                found = self.resolve(req, sent, exc, window=self.window)
                if found is not None:
                    self.acknowledge(req, found)
                    return
                if self.stopping.is_set():
                    return
                if tries > self.retries:
                    self.emit(
                        SubmitFailed(
                            req.client_order_id,
                            f"{self.io.exchange} did not answer ({type(exc).__name__}: {self.io.scrub(exc)[:200]}); "
                            f"the order is confirmed absent (looked up by client order id); "
                            f"gave up after {tries} tries",
                        )
                    )
                    return
                log.warning("%s: order %s confirmed absent after %s; sending it again (same client order id)",
                            self.io.exchange, req.client_order_id, type(exc).__name__)  # fmt: skip
                continue
            except ccxt.BaseError as exc:  # the exchange refused it: InsufficientFunds, InvalidOrder...
                if kind in STOP_TYPES and self.io.broker.stop_already_crossed(exc):
                    # The market has passed the stop price already: backtrader fills such a stop
                    # at the next price, so it goes as the order it triggers into.
                    kind = triggered_type(kind)
                    ccxt_type, price, params = self.create_args(req, kind)
                    tries = 0
                    log.info("%s: stop order %s would trigger immediately (%s); sending it as a %s order",
                             self.io.exchange, req.client_order_id, self.exchange_message(exc), kind)  # fmt: skip
                    continue
                self.emit(SubmitFailed(req.client_order_id, f"{type(exc).__name__}: {self.exchange_message(exc)}",
                                       margin=isinstance(exc, ccxt.InsufficientFunds)))  # fmt: skip
                return
            self.acknowledge(req, answer)
            return

    def create_oco(self, req: OcoRequest) -> None:
        """Send an OCO list; an unknown outcome is resolved by looking its legs up, as for one
        order. A refusal comes back as :class:`OcoRefused` (the session then falls back)."""
        import ccxt

        legs = (req.limit, req.stop)
        tries = 0
        delay = 0.5
        while not self.stopping.is_set():
            tries += 1
            self.io.gate.wait(self.stopping)
            sent = time.monotonic()
            try:
                answers = self.io.broker.create_oco_orders(
                    req.limit.symbol, req.limit.side, req.limit.amount, req.limit.price, req.stop.stop_price,
                    req.stop.price, req.limit.client_order_id, req.stop.client_order_id,
                )  # fmt: skip
            except rate_limit_errors() as exc:
                self.io.backoff_rate_limit(exc, delay)
                delay = min(delay * 2, 30.0)
                if self.acknowledge_legs(legs, sent, exc, 0.0):
                    return
                if tries > max(3, self.retries):
                    self.emit(OcoRefused(req, f"rate limited by {self.io.exchange} {tries} times"))
                    return
                continue
            except (ccxt.OperationFailed, ccxt.BadResponse) as exc:
                if isinstance(exc, ccxt.InvalidNonce):
                    self.io.resync_time()
                log.warning("%s: OCO %s/%s ended without an answer (%s); looking it up by client order id",
                            self.io.exchange, req.limit.client_order_id, req.stop.client_order_id,
                            self.io.scrub(exc)[:200])  # fmt: skip
                if self.acknowledge_legs(legs, sent, exc, self.window) or self.stopping.is_set():
                    return
                if tries > self.retries:
                    self.emit(OcoRefused(req, f"{self.io.exchange} did not answer ({type(exc).__name__}); the list "
                                              f"is confirmed absent; gave up after {tries} tries"))  # fmt: skip
                    return
                continue
            except ccxt.BaseError as exc:
                self.emit(OcoRefused(req, f"{type(exc).__name__}: {self.exchange_message(exc)}"))
                return
            for leg, answer in zip(legs, answers, strict=True):
                self.acknowledge(leg, answer)
            return

    def acknowledge_legs(self, legs: tuple[CreateRequest, CreateRequest], sent: float, error: BaseException,
                         window: float) -> bool:  # fmt: skip
        """Look an OCO's legs up after an unknown outcome; True when the list exists."""
        found = self.resolve(legs[0], sent, error, window=window)
        if found is None:
            return False
        self.acknowledge(legs[0], found)
        other = self.resolve(legs[1], sent, error, window=0.0)
        if other is not None:
            self.acknowledge(legs[1], other)
        else:
            self.emit(SubmitFailed(legs[1].client_order_id, "its OCO list exists but this leg was not found"))
        return True

    def already_crossed(self, req: CreateRequest) -> bool:
        """Whether the exchange's last price has already crossed the stop price of ``req``.

        For exchanges that take a stop's trigger direction from the last price (Bybit spot): a
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
        params.update(self.io.broker.create_order_params(kind, req.side))
        return ccxt_type, price, params

    def exchange_message(self, exc: BaseException) -> str:
        """The exchange's own words (``msg`` / ``retMsg``) when the error carries its JSON."""
        text = self.io.scrub(exc)
        match = re.search(r'"(?:msg|retMsg)"\s*:\s*"([^"]*)"', text)
        return match.group(1) if match else text

    def acknowledge(self, req: CreateRequest, answer: dict[str, Any]) -> None:
        order_id = str(answer.get("id"))
        self.order_ids[req.client_order_id] = order_id
        update = self.io.order_update(answer, symbol=req.symbol)
        self.emit(Ack(req.client_order_id, order_id, update))

    def resolve(self, req: CreateRequest, sent: float, error: BaseException, *, window: float) -> dict | None:
        """Look the order up until found, or until a lookup at least ``window`` seconds after
        sending confirms it absent (None). Lookups that fail are retried without limit: an
        order is only declared absent by an answer, never by silence."""
        delay = 0.25
        warned = False
        while not self.stopping.is_set():
            self.io.gate.wait(self.stopping)
            try:
                found = self.io.find_order(req.symbol, req.client_order_id, since=req.created_ms)
            except Exception as exc:
                found = None
                confirmed = False
                if not warned and time.monotonic() - sent > window + 10:
                    warned = True
                    self.emit(StoreMessage(f"order {req.client_order_id}: outcome still unknown, the exchange "
                                           f"cannot be asked ({self.io.scrub(exc)[:200]}); still trying"))  # fmt: skip
            else:
                if found is not None:
                    return found
                confirmed = True
            if confirmed and time.monotonic() - sent >= window:
                return None
            wait = delay if not confirmed else min(delay, max(0.05, window - (time.monotonic() - sent)))
            if self.stopping.wait(wait):
                return None
            delay = min(delay * 2, 30.0)
        return None

    # --- cancel -------------------------------------------------------------------------------------

    def cancel(self, req: CancelRequest) -> None:
        import ccxt

        client = self.io.client
        order_id = req.order_id or self.order_ids.get(req.client_order_id)
        if order_id is None:
            found = self.io.find_order(req.symbol, req.client_order_id, since=req.created_ms)
            if found is None:
                self.emit(CancelFailed(req.client_order_id, "the order is not on the exchange"))
                return
            order_id = str(found.get("id"))
        attempts = 0
        for params in self.io.broker.cancel_param_sets(req.type):
            while not self.stopping.is_set():
                self.io.gate.wait(self.stopping)
                try:
                    answer = client.cancel_order(order_id, req.symbol, dict(params))
                except ccxt.OrderNotFound:
                    break  # try the next parameter set, then look the order up
                except rate_limit_errors() as exc:
                    self.io.backoff_rate_limit(exc, 1.0)
                    continue  # a cancel is idempotent: repeating it is safe
                except ccxt.OperationFailed as exc:
                    attempts += 1
                    if attempts > 5:
                        self.emit(CancelFailed(req.client_order_id, f"cancel not confirmed: {self.io.scrub(exc)}"))
                        return
                    if self.stopping.wait(min(0.5 * 2**attempts, 10.0)):
                        return
                    continue
                except ccxt.BaseError as exc:
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
        found = self.io.find_order(req.symbol, req.client_order_id, order_id, since=req.created_ms)
        update = self.io.order_update(found, symbol=req.symbol) if found else None
        if update is None:
            return False
        self.emit(update)
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
            self.emit(BalanceSnapshot(self.io.balances(), now_ms()))
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
            for t in self.io.trades_since(symbol, max(0, since)):
                if str(t.get("order")) in ids:
                    self.emit(("rest_fill", self.io.fill(t, self.client_ids(str(t.get("order"))))))
            open_orders = {str(o.get("id")): o for o in self.io.read(self.io.client.fetch_open_orders, symbol)}
            for cid, oid, _, created in items:
                found = open_orders.get(str(oid)) if oid else None
                if found is None:
                    found = self.io.read(self.io.find_order, symbol, cid, oid, created)
                update = self.io.order_update(found, symbol=symbol) if found else None
                if update is not None:
                    self.emit(update)
        if task.fetch_balance:
            self.refresh_balances()
