"""Exchange access for the live broker: ccxt reads under the shared retry policy
(:mod:`realtrade_core.retry`), lookups on the exchange's clock, and ccxt answers turned into
realtrade events (parsing only: no broker state changes here)."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .. import retry
from ..errors import ConfigurationError
from ..events import Fill, OrderStatus, OrderUpdate, Side
from ..retry import RateGate
from .model import ZERO, dec

if TYPE_CHECKING:
    from .owner import LiveBroker

log = logging.getLogger(__name__)


_ALMOST_ALL = Decimal("0.999999999")  # filled this share of the amount or more: filled (float noise)
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


__all__ = ["ExchangeIO", "RateGate", "rate_limit_errors", "scrub"]


class ExchangeIO:
    """ccxt calls with realtrade's error policy, converters to realtrade events, and lookups.

    Called from worker threads (and from cerebro's thread during start-up, before the workers
    run). Raises the raw ccxt exceptions so callers can tell an unknown outcome from a refusal.
    """

    def __init__(self, broker: LiveBroker, stopping: threading.Event) -> None:
        self.broker = broker
        self.store = broker.p.store
        self.dialect = broker.dialect  # how the exchange wants its orders (the plugin's ExecutionDialect)
        self.client = self.store.client
        self.exchange = self.store.exchange or ""
        self.gate: RateGate = retry.gate_for(self.store)  # shared with the feeds: a ban is per IP
        self.stopping = stopping

    def scrub(self, text: Any) -> str:
        creds = self.store.credentials
        return scrub(str(text), creds.api_key, creds.secret)

    # --- retry policy ----------------------------------------------------------------------------

    def exchange_ms(self) -> int:
        """The exchange's clock now: orders are stamped with it, and every lookup's ``since``."""
        return self.store.exchange_ms()

    def retry_after(self, exc: BaseException) -> float | None:
        """Seconds the exchange asked us to wait (``Retry-After``, or its execution dialect's
        reading of the error and headers: a ban's deadline, a limit's reset)."""
        return retry.requested_wait(self.store, exc)

    def backoff_rate_limit(self, exc: BaseException, fallback: float) -> float:
        """Close the venue's gate as long as the exchange asked (else ``fallback`` seconds)."""
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

    def read(self, func: Callable[..., Any], *args: Any, patience: float | None = retry.DEFAULT_PATIENCE,
             **kwargs: Any) -> Any:  # fmt: skip
        """Call a *read* (never a create) under the shared retry policy: timeouts, 5xx and rate
        limits are waited out (for at most ``patience`` seconds, or until the broker stops); a
        refused key or an unknown symbol raises at once with what to do. Other ccxt errors
        propagate as they are, so callers can tell a missing order from a failed request."""
        import ccxt

        context = retry.RetryContext(stopping=self.stopping, patience=patience)
        try:
            return retry.call(self.store, func, *args, retry_context=context, resync=self.resync_time, **kwargs)
        except ccxt.AuthenticationError as exc:  # PermissionDenied and AccountSuspended too
            raise self.permanent(exc) from exc
        except ccxt.BadSymbol as exc:
            raise ConfigurationError(f"{self.exchange}: {self.scrub(exc)}; check the symbol (BASE/QUOTE, e.g. "
                                     f"'BTC/USDT') against the exchange's markets") from exc  # fmt: skip

    def permanent(self, exc: BaseException) -> Exception:
        """The realtrade error for a refused key, saying what to do."""
        from ..errors import ExchangeError

        return ExchangeError(
            f"{self.exchange} {self.store.venue}: the API key was refused ({type(exc).__name__}: "
            f"{self.scrub(exc)[:200]}); check the key and secret, that the key may read the account and "
            f"trade spot, and its IP whitelist"
        )

    # --- converters ------------------------------------------------------------------------------

    def order_update(self, o: dict[str, Any], *, symbol: str | None = None) -> OrderUpdate | None:
        """An OrderUpdate from a ccxt order (None when the answer carries no status)."""
        status_text = o.get("status")
        if status_text is None:
            return None
        filled = dec(o.get("filled")) or ZERO
        amount = dec(o.get("amount")) or ZERO
        reason = None
        if status_text == "open":
            status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW
        else:
            status = _CCXT_STATUS.get(str(status_text).lower())
            if status is None:
                return None
            resting = str(o.get("type") or "").lower() != "market"  # a market buy's amount may be in the quote
            if status is OrderStatus.FILLED and resting and amount > 0 and filled < amount * _ALMOST_ALL:
                # ccxt calls an order "closed" once it is no longer open, also when it ended part
                # filled (Bybit's PartiallyFilledCanceled): it was cancelled with that much filled.
                status, reason = OrderStatus.CANCELED, f"closed with {filled} of {amount} filled"
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
            amount=amount,
            filled=filled,
            average=dec(o.get("average")),
            reason=reason,
            time=int(o.get("lastUpdateTimestamp") or o.get("timestamp") or self.exchange_ms()),
            stop_price=dec(o.get("triggerPrice") or o.get("stopPrice")),
        )

    def fill(self, t: dict[str, Any], client_order_id: str | None) -> Fill:
        """A Fill from a ccxt trade of ours."""
        fee = t.get("fee") or {}
        info = t.get("info") or {}
        field = self.dialect.client_order_id_field  # where the exchange's own trade record keeps it
        cid = client_order_id or t.get("clientOrderId") or info.get(field) or info.get("clientOrderId")
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

    @property
    def contracts(self) -> bool:
        """The store trades perpetual contracts (their orders follow the dialect's contract rules)."""
        return bool(getattr(self.store, "perpetual", False))

    def open_orders(self, symbol: str) -> list[dict[str, Any]]:
        """Every open order of ``symbol`` (a raw ccxt call: errors propagate); for perpetuals
        through each of the dialect's ``contract_open_order_params`` (conditional orders too)."""
        if not self.contracts:
            return list(self.client.fetch_open_orders(symbol))
        seen: dict[str, dict[str, Any]] = {}
        for params in self.dialect.contract_open_order_params:
            for o in self.client.fetch_open_orders(symbol, None, None, dict(params)):
                seen.setdefault(str(o.get("id")), o)
        return list(seen.values())

    def cancel_param_sets(self, order_type: str) -> list[dict[str, Any]]:
        if self.contracts:
            return self.dialect.contract_cancel_param_sets(order_type)
        return self.dialect.cancel_param_sets(order_type)

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

        extra = dict(self.dialect.fetch_order_params)
        try:
            if order_id is not None:
                found = self.client.fetch_order(str(order_id), symbol, extra)
            else:
                found = self.client.fetch_order(None, symbol, {"clientOrderId": client_order_id, **extra})
            if found and matches(found):
                return found
        except (ccxt.OrderNotFound, ccxt.ArgumentsRequired, ccxt.NotSupported, ccxt.BadRequest):
            pass
        for o in self.open_orders(symbol):
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
