"""Live mode of the broker: real orders through ccxt, status and fills from the private stream.

Threads (DESIGN §4). backtrader is single-threaded, so every change to orders, positions, cash
and the journal's view of them happens in cerebro's thread, in :meth:`LiveSession.next`, which
``broker.next()`` calls on every pass of cerebro's loop. Three other threads only talk to the
exchange and put typed records on one inbox queue:

- the store's private WebSocket thread: :class:`~realtrade_core.events.OrderUpdate`,
  :class:`~realtrade_core.events.Fill`, :class:`~realtrade_core.events.BalanceUpdate` and
  ``("connected" | "disconnected" | "failed", reason)`` tuples;
- the *order sender* (:class:`OrderSender`): creates and cancels orders, one at a time in the
  order the strategy asked, and resolves unknown outcomes (below);
- the *account reader* (:class:`AccountReader`): refreshes balances every ``balance_refresh``
  seconds and, when asked, audits open orders and fetches fills over REST.

Orders you can trust (DESIGN §5, EXCHANGE-NOTES lessons 3-8, 10-12):

- Every order gets a client order id and a journal row *before* it is sent.
- A fill is matched to its order by client order id, so one that arrives before the REST
  acknowledgement is applied, not dropped; fills are applied once, keyed by trade id in the
  journal, whichever of the stream, a REST poll or a restart brings them.
- A timeout, 5xx or network error on create is an *unknown outcome*: the order is looked up by
  client order id, repeatedly, until the exchange can no longer accept the lost request (its
  ``recvWindow`` plus a margin); only an order confirmed absent is sent again, with the same
  client order id. A 429/418 answer means "refused, not executed": the sender waits as long as
  ``Retry-After`` asks, looks the order up anyway, and only then sends it again. Reads retry
  with the same back-off; creates are never retried blindly.
- Fees charged in the base asset reduce the position, so a closing sell of the whole position
  matches the account's base balance.
- Status updates the stream announces but whose fills do not arrive within ``fill_grace``
  seconds, and every open order every ``audit_interval`` seconds, are checked over REST: a
  user-data stream that silently stops delivering fills loses nothing. Without a private
  stream (or while it is down) the same audit runs every ``poll_interval`` seconds.

Brackets and OCO follow backtrader's BackBroker: a bracket's parent is sent when its last
child is submitted; the children are Submitted and Accepted at once but held until the parent
has completely filled, then sized by what it filled (a sell child never more than the account
holds, as ``close()``). On spot every resting sell locks what it may sell, so the two exits
rest as the exchange allows (``Broker.bracket_exits``): one exchange OCO list (``"oco"``,
Binance), two conditional orders that hold nothing until they trigger (``"conditional"``,
Bybit; the take-profit as a conditional limit at its price), or the take-profit alone with the
stop armed here (``"held"``): when a bar crosses the stop, the take-profit is cancelled and,
once that is confirmed, the stop goes as a market order (a stop-limit as a limit order). An
OCO list the exchange refuses falls back to ``"held"``. A child that ends cancels its siblings
(an OCO list's other leg is ended by the exchange and reported Canceled, after the fill, as
backtrader reports it); a parent that ends unfilled cancels its children, which are never sent.
Orders grouped by ``oco=`` cancel the others when one executes or ends. Every member of a
bracket or OCO group is linked in the journal with its state (held, armed, triggered, sent,
done), so a restart rebuilds the groups the previous run left unfinished: held children wait
for their parent again (or go out, if it filled while the process was down), an armed stop is
watched again, a stop whose sibling was being cancelled for it is sent, and a group member
that ended while down ends its group as it would have live.

Order validity (backtrader's ``valid=``): the order rests on the exchange as good-till-cancelled.
BackBroker expires an order at the first bar whose datetime is past ``order.valid``, before that
bar can fill it, so the live broker cancels it on the exchange as soon as the bar before has
closed (the data's *next* bar would be past ``valid``); once the cancel is confirmed the order
ends Expired, stamped with that next bar's datetime as in a backtest. A fill that lands before
the cancel still counts (a partly filled order ends Expired with what it filled). An order that
would expire before any bar could fill it is never sent. Held bracket children follow their
bracket: the parent's or a sibling's end cancels them. The strategy cancelling the order on the
last bar it is valid for makes it Canceled, as in a backtest. Validity is not journaled: an
order re-attached after a restart is good till cancelled.

A stop whose price the market has already crossed when it reaches the exchange (refused: it
would trigger immediately) is one backtrader fills at the next price, so it is sent again at
once as the order it triggers into: a market order (a stop-limit as a limit order).
"""

from __future__ import annotations

import logging
import math
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import backtrader as bt

from .errors import ConfigurationError
from .events import BalanceUpdate, Fill, OrderStatus, OrderUpdate, Side
from .journal import SUBMITTING, Journal, JournalLink, JournalOrder, default_journal_path

if TYPE_CHECKING:
    from .broker import Broker

log = logging.getLogger(__name__)

ZERO = Decimal(0)

#: backtrader execution type -> realtrade order type (the journal's and OrderRequest's words)
BT_TO_TYPE = {
    bt.Order.Market: "market",
    bt.Order.Close: "market",
    bt.Order.Limit: "limit",
    bt.Order.Stop: "stop",
    bt.Order.StopLimit: "stop_limit",
}
TYPE_TO_BT = {
    "market": bt.Order.Market,
    "limit": bt.Order.Limit,
    "stop": bt.Order.Stop,
    "stop_limit": bt.Order.StopLimit,
}
STOP_TYPES = frozenset({"stop", "stop_limit"})
#: a journal order's final status -> backtrader's
FINAL_TO_BT = {
    "filled": bt.Order.Completed,
    "canceled": bt.Order.Canceled,
    "expired": bt.Order.Expired,
    "rejected": bt.Order.Rejected,
}

_CCXT_STATUS = {
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


# --------------------------------------------------------------------------------------------
# small helpers


def triggered_type(kind: str) -> str:
    """The order a stop becomes when it triggers: a market order (a stop-limit: a limit order)."""
    return "limit" if kind == "stop_limit" else "market"


def rate_limit_errors() -> tuple[type[BaseException], ...]:
    """ccxt's errors for 429/418 answers (in ccxt 4 RateLimitExceeded is not a DDoSProtection)."""
    import ccxt

    return (ccxt.DDoSProtection, ccxt.RateLimitExceeded)


def now_ms() -> int:
    return int(time.time() * 1000)


def dec(value: Any) -> Decimal | None:
    """A Decimal from an exchange or ccxt number (floats through their shortest repr)."""
    if value is None or value == "":
        return None
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


def ms_to_num(ms: int | None) -> float:
    """backtrader's float date for epoch milliseconds (naive UTC, like the feed's bars)."""
    if not ms:
        ms = now_ms()
    return bt.date2num(datetime.fromtimestamp(ms / 1000, tz=timezone.utc).replace(tzinfo=None))


def bar_close_ms(data: Any) -> int:
    """Epoch milliseconds of the data's current bar (stamped at its candle's close)."""
    return int(bt.num2date(data.datetime[0]).replace(tzinfo=timezone.utc).timestamp() * 1000)


_BAR_LENGTH = {
    bt.TimeFrame.Seconds: lambda n: timedelta(seconds=n),
    bt.TimeFrame.Minutes: lambda n: timedelta(minutes=n),
    bt.TimeFrame.Days: lambda n: timedelta(days=n),
    bt.TimeFrame.Weeks: lambda n: timedelta(weeks=n),
}


def next_bar_time(data: Any) -> float | None:
    """backtrader's date number of the data's next bar (None before its first bar).

    Bars are stamped at their candle's close, one bar length apart; for other timeframes
    (months, ticks) the last bar's length stands in for the next one's.
    """
    try:
        if not len(data):
            return None
        now = float(data.datetime[0])
        if math.isnan(now):
            return None
        length = _BAR_LENGTH.get(data._timeframe)
        if length is not None:
            return float(bt.date2num(bt.num2date(now) + length(max(int(data._compression), 1))))
        return now + (now - float(data.datetime[-1])) if len(data) > 1 else now
    except (IndexError, TypeError, ValueError, AttributeError):
        return None


_URL_QUERY = re.compile(r"(https?://[^\s?\"']+)\?[^\s\"']*")


def scrub(text: str, *secrets: str | None) -> str:
    """An exchange error message fit for logs and reject reasons: URL query strings (which carry
    signatures and keys) cut, and any given secret redacted."""
    text = _URL_QUERY.sub(r"\1", str(text))
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:500]


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


# --------------------------------------------------------------------------------------------
# records the worker threads hand to cerebro's thread


@dataclass(frozen=True, slots=True)
class Ack:
    """The exchange has the order (its create answered, or a lookup found it)."""

    client_order_id: str
    order_id: str
    update: OrderUpdate | None = None  # the order's state, when the answer carried one


@dataclass(frozen=True, slots=True)
class SubmitFailed:
    """The order is not on the exchange: it refused it, or it could be confirmed absent."""

    client_order_id: str
    reason: str
    margin: bool = False  # refused for want of funds: backtrader's Margin status


@dataclass(frozen=True, slots=True)
class CancelFailed:
    client_order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class BalanceSnapshot:
    """Absolute balances of every asset from a REST refresh: ``asset -> (free, locked)``."""

    balances: dict[str, tuple[Decimal, Decimal]]
    time: int


@dataclass(frozen=True, slots=True)
class AuditDone:
    pass


@dataclass(frozen=True, slots=True)
class StoreMessage:
    """Something the strategy should hear about through ``notify_store``."""

    message: str


# --------------------------------------------------------------------------------------------
# exchange access shared by the worker threads


class RateGate:
    """A shared "not before" time: after a 429/418 every REST call of the broker waits it out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._not_before = 0.0

    def block(self, seconds: float) -> None:
        with self._lock:
            self._not_before = max(self._not_before, time.monotonic() + max(0.0, seconds))

    def remaining(self) -> float:
        with self._lock:
            return max(0.0, self._not_before - time.monotonic())

    def wait(self, stopping: threading.Event | None = None) -> None:
        while True:
            left = self.remaining()
            if left <= 0:
                return
            if stopping is not None:
                if stopping.wait(left):
                    return
            else:
                time.sleep(left)


class ExchangeIO:
    """ccxt calls with realtrade's error policy, converters to realtrade events, and lookups.

    Called from worker threads (and from cerebro's thread during start-up, before the workers
    run). Raises the raw ccxt exceptions so callers can tell an unknown outcome from a refusal.
    """

    def __init__(self, broker: Broker, stopping: threading.Event) -> None:
        self.broker = broker
        self.store = broker.p.store
        self.client = self.store.client
        self.exchange = self.store.exchange or ""
        self.gate = RateGate()
        self.stopping = stopping

    def scrub(self, text: Any) -> str:
        creds = self.store.credentials
        return scrub(str(text), creds.api_key, creds.secret)

    # --- retry policy ----------------------------------------------------------------------------

    def retry_after(self, exc: BaseException) -> float | None:
        """Seconds the exchange asked us to wait (``Retry-After``, or Binance's ban deadline)."""
        headers = getattr(self.client, "last_response_headers", None) or {}
        for key, value in dict(headers).items():
            if str(key).lower() == "retry-after":
                try:
                    return min(max(float(value), 0.0), 3 * 86400.0)
                except (TypeError, ValueError):
                    break
        match = re.search(r"banned until (\d{13})", str(exc))
        if match:
            server_now = time.time() * 1000 + self.store.time_offset_ms
            return min(max((int(match.group(1)) - server_now) / 1000, 0.0), 3 * 86400.0)
        return None

    def backoff_rate_limit(self, exc: BaseException, fallback: float) -> float:
        wait = self.retry_after(exc)
        wait = fallback if wait is None else wait
        log.warning("%s rate limit (%s): backing off %.1f s as asked", self.exchange, type(exc).__name__, wait)
        self.gate.block(wait)
        return wait

    def resync_time(self) -> None:
        """After a timestamp error (-1021, 10002): measure the clock offset again."""
        loader = getattr(self.client, "load_time_difference", None)
        try:
            if callable(loader):
                loader()
            self.store.sync_time()
        except Exception as exc:  # the next attempt reports the real problem
            log.debug("time resync failed: %s", self.scrub(exc))

    def read(self, func: Callable[..., Any], *args: Any, attempts: int = 6, **kwargs: Any) -> Any:
        """Call a *read* (never a create), retrying network errors and rate limits with back-off."""
        import ccxt

        delay = 0.5
        for attempt in range(1, attempts + 1):
            self.gate.wait(self.stopping)
            try:
                return func(*args, **kwargs)
            except rate_limit_errors() as exc:  # 429 / 418
                if attempt == attempts:
                    raise
                self.backoff_rate_limit(exc, delay)
            except ccxt.InvalidNonce:
                if attempt == attempts:
                    raise
                self.resync_time()
            except ccxt.OperationFailed as exc:  # timeouts, 5xx, connection errors
                if attempt == attempts or self.stopping.is_set():
                    raise
                log.info("%s: %s failed (%s), retrying in %.1f s", self.exchange, getattr(func, "__name__", "call"),
                         self.scrub(exc)[:200], delay)  # fmt: skip
                if self.stopping.wait(delay):
                    raise
            delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")

    # --- converters ------------------------------------------------------------------------------

    def order_update(self, o: dict[str, Any], *, symbol: str | None = None) -> OrderUpdate | None:
        """An OrderUpdate from a ccxt order (None when the answer carries no status)."""
        status_text = o.get("status")
        if status_text is None:
            return None
        filled = dec(o.get("filled")) or ZERO
        if status_text == "open":
            status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW
        else:
            status = _CCXT_STATUS.get(str(status_text).lower())
            if status is None:
                return None
        side = Side.BUY if o.get("side") == "buy" else Side.SELL
        return OrderUpdate(
            exchange=self.exchange,
            order_id=str(o.get("id")),
            client_order_id=o.get("clientOrderId"),
            symbol=o.get("symbol") or symbol or "",
            side=side,
            type=str(o.get("type") or ""),
            status=status,
            price=dec(o.get("price")),
            amount=dec(o.get("amount")) or ZERO,
            filled=filled,
            average=dec(o.get("average")),
            reason=None,
            time=int(o.get("lastUpdateTimestamp") or o.get("timestamp") or now_ms()),
            stop_price=dec(o.get("triggerPrice") or o.get("stopPrice")),
        )

    def fill(self, t: dict[str, Any], client_order_id: str | None) -> Fill:
        """A Fill from a ccxt trade of ours."""
        fee = t.get("fee") or {}
        info = t.get("info") or {}
        cid = client_order_id or t.get("clientOrderId") or info.get("orderLinkId") or info.get("clientOrderId")
        return Fill(
            exchange=self.exchange,
            trade_id=str(t.get("id")),
            order_id=str(t.get("order") or ""),
            client_order_id=cid or None,
            symbol=t.get("symbol") or "",
            side=Side.BUY if t.get("side") == "buy" else Side.SELL,
            price=dec(t.get("price")) or ZERO,
            amount=dec(t.get("amount")) or ZERO,
            fee=dec(fee.get("cost")) or ZERO,
            fee_currency=fee.get("currency"),
            is_maker=t.get("takerOrMaker") == "maker",
            time=int(t.get("timestamp") or 0),
        )

    def balances(self) -> dict[str, tuple[Decimal, Decimal]]:
        raw = self.read(self.client.fetch_balance)
        out: dict[str, tuple[Decimal, Decimal]] = {}
        free, used = raw.get("free") or {}, raw.get("used") or {}
        for asset in set(free) | set(used):
            out[asset] = (dec(free.get(asset)) or ZERO, dec(used.get(asset)) or ZERO)
        return out

    # --- lookups ---------------------------------------------------------------------------------

    def find_order(
        self, symbol: str, client_order_id: str | None, order_id: str | None = None, since: int | None = None
    ) -> dict[str, Any] | None:
        """The exchange's record of one of our orders, open or closed, or None if it has none.

        Tries the exchange's own lookup first (``fetch_order``, by id or by client id), then the
        open orders and the recent closed orders, because some exchanges (Bybit's unified
        account) cannot fetch a closed order by client id. Network errors propagate.
        """
        import ccxt

        def matches(o: dict[str, Any]) -> bool:
            if order_id is not None and str(o.get("id")) == str(order_id):
                return True
            return client_order_id is not None and o.get("clientOrderId") == client_order_id

        extra = dict(self.broker.fetch_order_params)
        try:
            if order_id is not None:
                found = self.client.fetch_order(str(order_id), symbol, extra)
            else:
                found = self.client.fetch_order(None, symbol, {"clientOrderId": client_order_id, **extra})
            if found and matches(found):
                return found
        except (ccxt.OrderNotFound, ccxt.ArgumentsRequired, ccxt.NotSupported, ccxt.BadRequest):
            pass
        for o in self.client.fetch_open_orders(symbol):
            if matches(o):
                return o
        has = getattr(self.client, "has", {}) or {}
        lister = None
        if has.get("fetchClosedOrders"):
            lister = self.client.fetch_closed_orders
        elif has.get("fetchOrders"):
            lister = self.client.fetch_orders
        if lister is not None:
            start = None if since is None else max(0, since - 60_000)
            for o in lister(symbol, start):
                if matches(o):
                    return o
        return None

    def trades_since(self, symbol: str, since: int, page: int = 100, max_pages: int = 50) -> list[dict[str, Any]]:
        """Our trades of ``symbol`` from ``since`` (ms), oldest first, paged by time."""
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        cursor = since
        for _ in range(max_pages):
            batch = self.read(self.client.fetch_my_trades, symbol, cursor, page)
            fresh = [t for t in batch if str(t.get("id")) not in seen]
            for t in fresh:
                seen.add(str(t.get("id")))
                out.append(t)
            if len(batch) < page or not fresh:
                break
            newest = max(int(t.get("timestamp") or 0) for t in batch)
            if newest <= cursor:
                break
            cursor = newest
        out.sort(key=lambda t: (int(t.get("timestamp") or 0), str(t.get("id"))))
        return out


# --------------------------------------------------------------------------------------------
# worker threads


@dataclass(frozen=True, slots=True)
class CreateRequest:
    client_order_id: str
    symbol: str
    side: str  # "buy" | "sell"
    type: str  # "market" | "limit" | "stop" | "stop_limit"
    amount: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    created_ms: int
    trigger_above: bool | None = None  # a stop firing on a rise (None: buys rise, sells fall)

    @property
    def fires_on_rise(self) -> bool:
        return self.side == "buy" if self.trigger_above is None else self.trigger_above


@dataclass(frozen=True, slots=True)
class OcoRequest:
    """A bracket's two exits as one exchange OCO order list: a limit order and a stop."""

    limit: CreateRequest
    stop: CreateRequest


@dataclass(frozen=True, slots=True)
class OcoRefused:
    """The exchange refused an OCO list (nothing was placed): ``reason`` says why."""

    request: OcoRequest
    reason: str


@dataclass(frozen=True, slots=True)
class CancelRequest:
    client_order_id: str
    symbol: str
    type: str
    order_id: str | None
    created_ms: int


@dataclass(frozen=True, slots=True)
class AuditRequest:
    """Check these orders over REST: ``(client_order_id, order_id, symbol, created_ms)``."""

    orders: tuple[tuple[str, str | None, str, int], ...]
    fetch_balance: bool = False


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


# --------------------------------------------------------------------------------------------
# cerebro-thread state


@dataclass(eq=False)
class Tracked:
    """One live order as cerebro's thread tracks it."""

    order: bt.Order
    client_order_id: str
    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    created_ms: int
    order_id: str | None = None
    executed: Decimal = ZERO  # gross base amount applied to the backtrader order
    acked: bool = False  # the create's answer (or a lookup) has arrived
    exchange_filled: Decimal = ZERO  # cumulative filled the exchange last reported
    final: OrderUpdate | None = None  # a final status waiting for its fills
    waiting_since: float | None = None  # monotonic time fills went missing
    audits: int = 0  # REST audits asked for the missing fills (each waits twice as long)
    done: bool = False
    reattached: bool = False
    held: bool = False  # a bracket child, Accepted before it was sent
    seen: bool = False  # the exchange has shown the order (acknowledgement, update or fill)
    cancelling: bool = False  # a cancel request is on its way (the strategy's, or for validity)
    expiring: float | None = None  # past ``valid``: the datetime of the bar it expires at
    expire_bar: int = 0  # the data's bar count when the expiring cancel was sent
    unsent: bool = False  # expired before it could trade: never sent to the exchange
    waiting_sibling: float | None = None  # an OCO leg's end, held until the other leg's fill


@dataclass
class SymbolBook:
    """Position of one symbol in Decimal (authoritative) and backtrader's float view of it."""

    symbol: str
    base: str
    quote: str
    size: Decimal = ZERO
    price: Decimal = ZERO
    position: bt.Position = field(default_factory=bt.Position)
    trade_size: float = 0.0  # what the strategy's Trade object has accumulated (float, as it sums)
    data: Any = None
    last: float = 0.0  # the data's last close, read in cerebro's thread
    last_fill: float = 0.0  # monotonic time of the last applied fill

    def sync(self) -> None:
        self.position.size = float(self.size)
        self.position.price = float(self.price) if self.size else 0.0
        self.position.price_orig = self.position.price


@dataclass(eq=False)
class Bracket:
    """A bracket: the parent, and its children held until the parent has filled."""

    parent: bt.Order
    children: list[bt.Order]
    sent: bool = False  # the children went to the exchange
    amount: Decimal = ZERO  # what the children close (the parent's fill, less a base fee)
    armed: dict[int, int] = field(default_factory=dict)  # stop child ref -> bar count when armed
    triggered: list[bt.Order] = field(default_factory=list)  # armed stops whose price was crossed
    cancelled_for_trigger: set[int] = field(default_factory=set)  # siblings cancelled to make room
    armed_since: dict[int, int] = field(default_factory=dict)  # restored stop ref -> ms it was armed
    native_oco: bool = False  # the exits are an exchange OCO list: the exchange ends the other one


class LiveSession:
    """The live broker's state and logic; see the module docstring. Owned by the Broker."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.store = broker.p.store
        self.inbox: queue.Queue = queue.Queue()
        self.stopping = threading.Event()
        self.journal: Journal | None = None
        self._own_journal = False
        self.io: ExchangeIO | None = None
        self.sender: OrderSender | None = None
        self.reader: AccountReader | None = None
        self.orders: dict[str, Tracked] = {}  # client order id -> tracked (active and finished)
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

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        store = self.store
        self.io = ExchangeIO(self.broker, self.stopping)
        self.journal = self._open_journal()
        datas = self._cerebro_datas()
        for data in datas:
            self.book_for_data(data, create_position=False)
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
        for book in self.books.values():
            self.load_position(book)
        self.sender = OrderSender(self.io, self.inbox, self.stopping, window=self._unknown_window(),
                                  retries=int(self.broker.p.submit_retries))  # fmt: skip
        self.reader = AccountReader(self.io, self.inbox, self.stopping, refresh=float(self.broker.p.balance_refresh),
                                    client_ids=self._client_id_for)  # fmt: skip
        self.sender.start()
        self.reader.start()
        self.started = True
        self.restore_links()

    def stop(self) -> None:
        self.stopping.set()
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
        for key, value in (("exchange", store.exchange or ""), ("venue", store.venue)):
            known = journal.get_meta(key)
            if known is None:
                journal.set_meta(key, value)
            elif known != value:
                raise ConfigurationError(
                    f"the order journal {journal.path} belongs to {key} {known!r}, not {value!r}; "
                    f"give this broker its own journal=<path>"
                )
        log.info("%s %s: order journal %s", store.exchange, store.venue, journal.path)
        return journal

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
        cerebro = bt.metabase.findowner(self.broker, bt.Cerebro)
        if cerebro is None:
            return []
        return [d for d in cerebro.datas if getattr(getattr(d, "p", None), "store", None) is self.store]

    # --- symbols, books and positions -----------------------------------------------------------

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

    def load_position(self, book: SymbolBook) -> None:
        """Spot: the position is the base asset's balance; its price comes from the journal when
        known, else from the current price."""
        free, locked = self.balances.get(book.base, (ZERO, ZERO))
        book.size = free + locked
        price = ZERO
        if book.size:
            known = self.journal.position(book.symbol) if self.journal else None
            if known is not None and known[0] > 0 and known[1] > 0:
                price = known[1]
            else:
                price = self._current_price(book)
        book.price = price
        book.trade_size = 0.0  # the strategy holds no Trade for what existed before it started
        book.sync()

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

    # --- start-up reconciliation ----------------------------------------------------------------

    def reconcile(self) -> None:
        """Journal vs exchange at start: resolve orders the journal left open, fetch the fills
        missed while down, re-attach our open orders, report the ones we do not know."""
        assert self.io is not None and self.journal is not None
        journal, io = self.journal, self.io
        open_journal = journal.open_orders()
        symbols = set(self.books) | {o.symbol for o in open_journal}
        exchange_open: dict[str, list[dict[str, Any]]] = {}
        for symbol in sorted(symbols):
            exchange_open[symbol] = io.read(io.client.fetch_open_orders, symbol)
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
                if journal.record_fill(fill, source="offline"):
                    offline += 1
                    self._journal_position(fill)
                    if jo is not None:
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

    def _journal_position(self, fill: Fill) -> None:
        """Keep the journal's position (for the average price) in step with a fill."""
        assert self.journal is not None
        market = self.store.market(fill.symbol)
        size, price = self.journal.position(fill.symbol) or (ZERO, ZERO)
        delta = self._base_delta(fill, market["base"])
        size, price, _, _ = apply_to_position(size, price, delta, fill.price)
        self.journal.set_position(fill.symbol, size, price)

    def reattach(self, jo: JournalOrder, order_id: str, book: SymbolBook) -> None:
        """A backtrader order for an open order a previous run placed (``info.reattached``)."""
        order = self._make_order(jo, jo.amount, book)
        order.addinfo(order_id=order_id)
        order.submit(self.broker)
        order.accept(self.broker)
        tracked = Tracked(order, jo.client_order_id, jo.symbol, jo.side, jo.type, jo.amount, jo.price, jo.stop_price,
                          jo.created_ms, order_id=order_id, acked=True, reattached=True)  # fmt: skip
        self.orders[jo.client_order_id] = tracked
        self.by_order_id[(jo.symbol, order_id)] = jo.client_order_id
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
        if row.type == "limit":
            price = row.price
        elif row.type in STOP_TYPES:
            price, plimit = row.stop_price, row.price if row.type == "stop_limit" else None
        # simulated=True only while constructing: the data has no bar yet to stamp the order with.
        order = cls(owner=None, data=book.data, size=float(amount), exectype=TYPE_TO_BT.get(row.type, bt.Order.Market),
                    price=None if price is None else float(price), pricelimit=None if plimit is None else float(plimit),
                    simulated=True)  # fmt: skip
        order.p.simulated = False
        order.addinfo(client_order_id=row.client_order_id, reattached=True)
        order.addcomminfo(self.broker.getcommissioninfo(book.data))
        return order

    # --- brackets and OCO groups across restarts ------------------------------------------------------

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
            except Exception:
                log.exception("live broker: could not journal the %s state of order %s", state, cid)

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
        bracket.amount = next((link.amount for link in children if link.amount), ZERO)
        ended = []
        for link in children:
            if link.state in ("armed", "triggered"):
                child = self._restore_held(link, bracket.amount, book)
                if link.state == "armed":
                    bracket.armed[child.ref] = 0
                    bracket.armed_since[child.ref] = link.updated_ms  # bars closing later are watched
                else:
                    bracket.triggered.append(child)
            else:
                child, done = self._live_or_ended(link, book)
                if done:
                    ended.append(child)
            bracket.children.append(child)
        mode = self.broker.p.bracket_exits or self.broker.bracket_exits
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

    # --- orders from the strategy (cerebro's thread) -----------------------------------------------

    def submit(self, order: bt.Order) -> bt.Order:
        """Validate, round, journal and queue an order; problems become a Rejected order."""
        if order.parent is not None or not order.transmit:
            return self._submit_bracket_member(order)
        return self._send(order)

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
        if reason is None:
            try:
                request = self._request(order, as_type)
                self.journal.record_order(JournalOrder(
                    client_order_id=request.client_order_id, order_id=None, symbol=request.symbol,
                    side=request.side, type=request.type, amount=request.amount, price=request.price,
                    stop_price=request.stop_price, status=SUBMITTING, created_ms=request.created_ms,
                ))  # fmt: skip
            except _Reject as exc:
                reason = str(exc)
            except ValueError as exc:  # the journal already has this client order id
                reason = f"{exc}: every order needs a new client order id"
            except Exception as exc:  # never an exception into the strategy: a Rejected order
                log.exception("live broker: could not prepare an order")
                reason = f"could not prepare the order: {type(exc).__name__}: {exc}"
        if reason is not None:
            self._reject_now(order, reason)
            self._after(order)
            return None
        if not held:
            order.submit(self.broker)
            order.addcomminfo(self.broker.getcommissioninfo(order.data))
        self.orders[request.client_order_id] = Tracked(
            order, request.client_order_id, request.symbol, request.side, request.type, request.amount,
            request.price, request.stop_price, request.created_ms, held=held,
        )  # fmt: skip
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
        if order.exectype in (bt.Order.StopTrail, bt.Order.StopTrailLimit):
            return (f"trailing stops ({order.getordername()}) are not supported in live mode yet; use Market, "
                    f"Limit, Stop or StopLimit")  # fmt: skip
        if order.exectype not in BT_TO_TYPE:
            return f"{order.getordername()} orders are not supported in live mode; use Market, Limit, Stop or StopLimit"
        if order.data is None or not hasattr(order.data, "p"):
            return "the order has no data feed"
        return None

    def _request(self, order: bt.Order, as_type: str | None = None) -> CreateRequest:
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
            limit = order.created.pricelimit if order.exectype == bt.Order.StopLimit else order.created.price
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
        return CreateRequest(cid, symbol, "buy" if order.isbuy() else "sell", kind, amount, price, stop, now_ms(),
                             trigger_above)  # fmt: skip

    def _reject_now(self, order: bt.Order, reason: str) -> bt.Order:
        order.addinfo(reject_reason=reason)
        order.reject(self.broker)
        self.broker.notify(order)
        log.info("order rejected before sending: %s", reason)
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

    # --- validity (backtrader's valid=) --------------------------------------------------------------

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
        orders = [t.order for t in self.orders.values() if not t.done and t.order.alive()]
        held = [
            c for b in self.brackets.values() for c in b.children
            if c.alive() and c.info.get("client_order_id") not in self.orders
        ]  # fmt: skip
        return orders + held

    # --- brackets and OCO (cerebro's thread) -------------------------------------------------------

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
        mode = self.broker.p.bracket_exits or self.broker.bracket_exits
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

    # --- cerebro's loop --------------------------------------------------------------------------------

    def _on_stream(self, item: Any) -> None:
        """Runs on the WebSocket thread: only enqueue."""
        if isinstance(item, tuple) and item and item[0] == "connected":
            self.stream_up.set()
        self.inbox.put(item)

    def next(self) -> None:
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
        self._housekeeping()

    def apply(self, item: Any) -> None:
        if isinstance(item, Fill):
            self.apply_fill(item, "stream")
        elif isinstance(item, OrderUpdate):
            self.apply_update(item)
        elif isinstance(item, BalanceUpdate):
            for asset, free, locked in item.balances:
                self.balances[asset] = (free, locked)
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
            self._check_drift()
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
        if not tracked.done:
            self._accept(tracked)
        if ack.update is not None:
            self.apply_update(ack.update)

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

    # --- fills --------------------------------------------------------------------------------------

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

    # --- housekeeping ----------------------------------------------------------------------------

    def polling(self) -> bool:
        return not self.stream or self.stream_down or self.stream_failed

    def active(self) -> list[Tracked]:
        return [t for t in self.orders.values() if not t.done]

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

    def _check_drift(self) -> None:
        """The account's base balance and the position disagree with nothing in flight."""
        busy = {t.symbol for t in self.active()}
        for symbol, book in self.books.items():
            if symbol in busy or time.monotonic() - book.last_fill < 5.0:
                continue
            free, locked = self.balances.get(book.base, (ZERO, ZERO))
            total = free + locked
            market = self.store.market(symbol)
            step = dec((market.get("precision") or {}).get("amount")) or Decimal("1e-8")
            if abs(total - book.size) > step and self.drift_reported.get(symbol) != total:
                self.drift_reported[symbol] = total
                self.put_store(f"{symbol}: the account holds {total} {book.base} but the position is {book.size} "
                               f"(deposits, withdrawals or trades outside this broker)")  # fmt: skip

    # --- money --------------------------------------------------------------------------------------

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

    # --- notifications -------------------------------------------------------------------------------

    def put_store(self, message: str) -> None:
        log.info("%s: %s", self.store.exchange, message)
        self.store.put_notification(message)

    def _hook(self, event: Any) -> None:
        from .plugins import get_plugin_host

        get_plugin_host().order_event(self.store.exchange or "", event)

    def _client_id_for(self, order_id: str) -> str | None:
        # Called from the account reader thread: the journal is thread-safe, the dicts are not.
        if self.journal is None:
            return None
        jo = self.journal.find_order(order_id)
        return jo.client_order_id if jo else None


class _Reject(Exception):
    """An order refused before sending; the message is the reject reason."""
