"""Exchange access for the live broker: ccxt calls with the rate-limit policy, lookups, and
ccxt answers turned into realtrade events (parsing only: no broker state changes here)."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..events import Fill, OrderStatus, OrderUpdate, Side
from .model import ZERO, dec, now_ms

if TYPE_CHECKING:
    from ..broker import Broker

log = logging.getLogger(__name__)


_CCXT_STATUS = {
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


def rate_limit_errors() -> tuple[type[BaseException], ...]:
    """ccxt's errors for 429/418 answers (in ccxt 4 RateLimitExceeded is not a DDoSProtection)."""
    import ccxt

    return (ccxt.DDoSProtection, ccxt.RateLimitExceeded)


_URL_QUERY = re.compile(r"(https?://[^\s?\"']+)\?[^\s\"']*")


def scrub(text: str, *secrets: str | None) -> str:
    """An exchange error message fit for logs and reject reasons: URL query strings (which carry
    signatures and keys) cut, and any given secret redacted."""
    text = _URL_QUERY.sub(r"\1", str(text))
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:500]


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
