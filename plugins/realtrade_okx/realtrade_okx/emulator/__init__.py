"""OKX v5 dialect of the realtrade exchange emulator (spot, cash trading account).

Unmodified ``ccxt.okx`` works against it with only ``urls["api"]["rest"]`` replaced (see
:meth:`OkxDialect.ccxt_urls`) and its usual credentials (key, secret and a passphrase: the
emulator's accounts have none, so it takes any unless ``settings["passphrase"]`` names one);
so does a plain WebSocket client on ``/ws/v5/{public,business,private}``. No ccxt option needs
changing. Markets are OKX instrument ids (``BTC-USDT``) of the engine's markets (``BTCUSDT``).

Served REST endpoints (under ``/api/v5``): ``public/{time,instruments}``, ``system/status``,
``market/{candles,history-candles,ticker,tickers,books,trades}``,
``account/{balance,config,trade-fee}``, ``asset/currencies``, ``trade/{order,batch-orders,
cancel-order,cancel-batch-orders,orders-pending,orders-history,orders-history-archive,fills,
fills-history}``. Contract instrument types (MARGIN, SWAP, FUTURES, OPTION) answer empty lists.
The order model is in :mod:`.orders`, the streams in :mod:`.streams`, the payloads in
:mod:`.wire`.

What ccxt users meet here exactly as on OKX: ``clOrdId`` is at most 32 letters and digits (a
``-`` is refused, 51000); a spot market buy's ``sz`` is quote currency unless ``tgtCcy`` says
``base_ccy`` (ccxt sends ``base_ccy`` and the amount); ``fetch_closed_orders`` lists filled
orders only (``state=filled``), while ``fetch_order`` finds any. What differs: the engine's
minimum order value (5 USDT by default) applies, answered 51020, though OKX lists only
``minSz``; a ``post_only`` order that would take is refused (51000) where OKX cancels it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from .streams import OkxStreams
from .wire import INVALID_KEY, PARAMETER_ERROR, RATE_LIMIT

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["OkxDialect"]


class OkxDialect(OkxStreams):
    """OKX v5 wire protocol over the emulator's engine (see the module docstring)."""

    name: ClassVar[str] = "okx"
    order_paths: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {("POST", "/api/v5/trade/order"), ("POST", "/api/v5/trade/batch-orders")}
    )
    api_key_header: ClassVar[str] = "OK-ACCESS-KEY"
    client_order_id_params: ClassVar[tuple[str, ...]] = ("clOrdId",)

    def routes(self) -> list[web.RouteDef]:
        return [*self.rest_routes(), *self.order_routes(), *self.stream_routes()]

    def urls(self, base_http: str, base_ws: str) -> dict[str, str]:
        return {
            "rest": base_http,
            "ws_public": f"{base_ws}/ws/v5/public",
            "ws_business": f"{base_ws}/ws/v5/business",
            "ws_private": f"{base_ws}/ws/v5/private",
        }

    def ccxt_urls(self, base_http: str) -> dict[str, str]:
        # ccxt.okx builds every request from urls["api"]["rest"] (its "https://{hostname}").
        return {"rest": base_http}

    def error_body(self, status: int, retry_after: int | None) -> tuple[int, Any]:
        """OKX's answer to an injected HTTP fault: 429 (and 418, which OKX does not use) is its
        rate limit, code 50011 (ccxt RateLimitExceeded); 5xx a gateway's plain-text page, so a
        JSON *string* here, which ccxt maps by HTTP status (ExchangeNotAvailable, RequestTimeout)."""
        if status in (429, 418):
            return 429, self.envelope([], RATE_LIMIT, "Too Many Requests")
        if status >= 500:
            return status, f"{status} gateway error"
        if status == 401:
            return 401, self.envelope([], INVALID_KEY, "Invalid OK-ACCESS-KEY")
        return status, self.envelope([], PARAMETER_ERROR, "Parameter error")

    def error_code(self, status: int, body: Any) -> tuple[int, str]:
        if isinstance(body, dict) and str(body.get("code", "")).isdigit():
            return int(body["code"]), str(body.get("msg", ""))
        return status, f"HTTP {status}"
