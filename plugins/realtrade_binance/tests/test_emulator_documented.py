"""Every REST answer and stream message of the Binance emulator, field by field against Binance's
documented shapes (tests/fixtures/documented/*.json, compared by realtrade_core.emulator.conformance).

One scene on a manual clock: a market buy that fills, a resting limit buy, an OCO list; then each
endpoint is asked through unmodified ccxt's implicit API (the raw JSON) and each stream message is
taken off a real WebSocket. Every route the dialect serves must have a documented shape here, and
every shape a test.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from realtrade_core.emulator.conformance import check_fixture, load_fixture

FIXTURES = Path(__file__).parent / "fixtures" / "documented"
SYM = {"symbol": "BTCUSDT"}


class Scene:
    """An emulator with a filled order, a resting limit order and an OCO list."""

    def __init__(self, emulator: Any, ws_connect: Callable[[str], Any], recv_until: Callable[..., Any]) -> None:
        self.emulator = emulator
        self.ws_connect = ws_connect
        self.recv_until = recv_until
        self.client = emulator.ccxt_client()
        self.client.load_markets()
        self.user = ws_connect(emulator.urls["ws_api"])
        self.subscribed = self.api_request("userDataStream.subscribe.signature", self.signed({}))
        last = emulator.engine.last_price("BTCUSDT")
        self.below = str(int(last * Decimal("0.9")))
        self.above = str(int(last * Decimal("1.1")))
        self.filled = self.client.create_order("BTC/USDT", "market", "buy", 0.01)
        self.resting = self.client.create_order("BTC/USDT", "limit", "buy", 0.01, float(self.below))
        self.oco = self.client.privatePostOrderListOco(
            {**SYM, "side": "SELL", "quantity": "0.01", "aboveType": "LIMIT_MAKER", "abovePrice": self.above,
             "belowType": "STOP_LOSS_LIMIT", "belowStopPrice": self.below, "belowPrice": self.below,
             "belowTimeInForce": "GTC"}
        )  # fmt: skip

    def signed(self, params: dict[str, Any]) -> dict[str, Any]:
        params = {**params, "apiKey": self.emulator.api_key, "timestamp": int(time.time() * 1000)}
        payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
        params["signature"] = hmac.new(self.emulator.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        return params

    def api_request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        request_id = f"req-{method}"
        message: dict[str, Any] = {"id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.user.send(json.dumps(message))
        return self.recv_until(self.user, lambda m: m.get("id") == request_id)[0]

    def user_event(self, kind: str) -> Any:
        return self.recv_until(self.user, lambda m: m.get("event", {}).get("e") == kind)[0]

    def terminated(self) -> Any:
        self.emulator.dialect.terminate_user_data_streams()
        return self.user_event("eventStreamTerminated")

    def market(self, stream: str, *, combined: bool = False) -> Any:
        url = f"{self.emulator.base_ws}/stream?streams={stream}" if combined else f"{self.emulator.base_ws}/ws/{stream}"
        ws = self.ws_connect(url)
        # LIST_SUBSCRIPTIONS is answered once the streams in the URL are subscribed.
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 0}))
        self.recv_until(ws, lambda m: m.get("id") == 0)
        self.emulator.step(1)
        want = (lambda m: m.get("stream") == stream) if combined else (lambda m: "result" not in m)
        return self.recv_until(ws, want)[0]

    def stream_reply(self, message: dict[str, Any]) -> Any:
        ws = self.ws_connect(f"{self.emulator.base_ws}/ws/btcusdt@aggTrade")
        ws.send(json.dumps(message))
        return self.recv_until(ws, lambda m: m.get("id") == message["id"])[0]

    def shutdown(self) -> Any:
        ws = self.ws_connect(f"{self.emulator.base_ws}/stream?streams=btcusdt@trade")
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 7}))
        self.recv_until(ws, lambda m: m.get("id") == 7)
        self.emulator.dialect.send_server_shutdown()
        return self.recv_until(ws, lambda m: m.get("stream") == "!serverShutdown")[0]

    def error(self) -> Any:
        url = self.emulator.urls["rest"] + "/depth?symbol=NOSUCH"
        try:
            urllib.request.urlopen(url, timeout=5)
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read())
        raise AssertionError("an unknown symbol was answered without an error")

    def order(self, resp_type: str) -> Any:
        """A market buy: it fills on arrival, so a FULL answer has fills to check."""
        return self.client.privatePostOrder(
            {**SYM, "side": "BUY", "type": "MARKET", "quantity": "0.01", "newOrderRespType": resp_type}
        )

    def cancel_all(self) -> Any:
        self.client.privateDeleteOrderList({**SYM, "orderListId": self.oco["orderListId"]})
        return self.client.privateDeleteOpenOrders(SYM)

    def test_order(self, **extra: str) -> Any:
        return self.client.privatePostOrderTest({**SYM, "side": "BUY", "type": "MARKET", "quantity": "0.01", **extra})


LIST_ID = "orderListId"
PRODUCERS: dict[str, Callable[[Scene], Any]] = {
    "rest_ping": lambda s: s.client.publicGetPing(),
    "rest_time": lambda s: s.client.publicGetTime(),
    "rest_exchange_info": lambda s: s.client.publicGetExchangeInfo(),
    "rest_depth": lambda s: s.client.publicGetDepth(SYM),
    "rest_trades": lambda s: s.client.publicGetTrades({**SYM, "limit": 5}),
    "rest_agg_trades": lambda s: s.client.publicGetAggTrades({**SYM, "limit": 5}),
    "rest_klines": lambda s: s.client.publicGetKlines({**SYM, "interval": "1m", "limit": 3}),
    "rest_ui_klines": lambda s: s.client.publicGetUiKlines({**SYM, "interval": "1m", "limit": 3}),
    "rest_avg_price": lambda s: s.client.publicGetAvgPrice(SYM),
    "rest_ticker_24hr": lambda s: s.client.publicGetTicker24hr(SYM),
    "rest_ticker_price": lambda s: s.client.publicGetTickerPrice(SYM),
    "rest_ticker_book": lambda s: s.client.publicGetTickerBookTicker(SYM),
    "rest_order_ack": lambda s: s.order("ACK"),
    "rest_order_result": lambda s: s.order("RESULT"),
    "rest_order_full": lambda s: s.order("FULL"),
    "rest_order_query": lambda s: s.client.privateGetOrder({**SYM, "orderId": s.resting["id"]}),
    "rest_open_orders": lambda s: s.client.privateGetOpenOrders(SYM),
    "rest_all_orders": lambda s: s.client.privateGetAllOrders(SYM),
    "rest_order_cancel": lambda s: s.client.privateDeleteOrder({**SYM, "orderId": s.resting["id"]}),
    "rest_open_orders_cancel": lambda s: s.cancel_all(),
    "rest_order_list_oco": lambda s: s.oco,
    "rest_order_list_cancel": lambda s: s.client.privateDeleteOrderList({**SYM, LIST_ID: s.oco[LIST_ID]}),
    "rest_order_list_query": lambda s: s.client.privateGetOrderList({LIST_ID: s.oco[LIST_ID]}),
    "rest_open_order_lists": lambda s: s.client.privateGetOpenOrderList(),
    "rest_order_test": lambda s: s.test_order(),
    "rest_order_test_commission": lambda s: s.test_order(computeCommissionRates="true"),
    "rest_my_trades": lambda s: s.client.privateGetMyTrades(SYM),
    "rest_account": lambda s: s.client.privateGetAccount(),
    "rest_error": lambda s: s.error(),
    "fapi_exchange_info": lambda s: s.client.fapiPublicGetExchangeInfo(),
    "dapi_exchange_info": lambda s: s.client.dapiPublicGetExchangeInfo(),
    "sapi_capital_config": lambda s: s.client.sapiGetCapitalConfigGetall(),
    "sapi_margin_all_pairs": lambda s: s.client.sapiGetMarginAllPairs(),
    "sapi_isolated_all_pairs": lambda s: s.client.sapiGetMarginIsolatedAllPairs(),
    "sapi_system_status": lambda s: s.client.sapiGetSystemStatus(),
    "sapi_trade_fee": lambda s: s.client.sapiGetAssetTradeFee(SYM),
    "ws_trade": lambda s: s.market("btcusdt@trade"),
    "ws_agg_trade": lambda s: s.market("btcusdt@aggTrade"),
    "ws_book_ticker": lambda s: s.market("btcusdt@bookTicker"),
    "ws_kline": lambda s: s.market("btcusdt@kline_1m"),
    "ws_combined_envelope": lambda s: s.market("btcusdt@trade", combined=True),
    "ws_subscribe_response": lambda s: s.stream_reply({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1}),
    "ws_list_subscriptions_response": lambda s: s.stream_reply({"method": "LIST_SUBSCRIPTIONS", "id": 3}),
    "ws_server_shutdown": lambda s: s.shutdown(),
    "wsapi_ping": lambda s: s.api_request("ping"),
    "wsapi_time": lambda s: s.api_request("time"),
    "wsapi_session_status": lambda s: s.api_request("session.status"),
    "wsapi_user_data_subscribe": lambda s: s.subscribed,
    "wsapi_error": lambda s: s.api_request("order.amend"),
    "uds_execution_report": lambda s: s.user_event("executionReport"),
    "uds_outbound_account_position": lambda s: s.user_event("outboundAccountPosition"),
    "uds_list_status": lambda s: s.user_event("listStatus"),
    "uds_event_stream_terminated": lambda s: s.terminated(),
}


@pytest.fixture
def scene(emulator: Any, ws_connect: Any, recv_until: Any) -> Scene:
    return Scene(emulator, ws_connect, recv_until)


@pytest.mark.parametrize("name", sorted(PRODUCERS))
def test_answer_has_the_documented_shape(name: str, scene: Scene) -> None:
    shape = load_fixture(FIXTURES / f"{name}.json")
    actual = PRODUCERS[name](scene)
    problems = check_fixture(actual, shape)
    assert not problems, f"{name} differs from {shape.source}:\n" + "\n".join(problems)


def test_every_documented_shape_is_checked() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.json")) == sorted(PRODUCERS)


def test_every_served_route_has_a_documented_shape(emulator: Any) -> None:
    documented = {json.loads(p.read_text())["endpoint"] for p in FIXTURES.glob("*.json")}
    streams = {"/ws", "/ws/{stream}", "/stream", "/ws-api/v3"}
    # The USDⓈ-M futures routes (perpetuals) are held to their shapes in test_emulator_futures.py;
    # of them only the exchangeInfo ccxt asks of every Binance emulator is documented here.
    served = {
        f"{route.method} {route.path}"
        for route in emulator.dialect.routes()
        if route.method in ("GET", "POST", "DELETE", "PUT") and route.path not in streams
        and not route.path.startswith(("/fapi/v2", "/fapi/v3", "/fstream"))
        and (not route.path.startswith("/fapi/v1") or route.path == "/fapi/v1/exchangeInfo")
    }
    assert served - documented == set()
    assert {e.split(" ", 1)[0] for e in documented if e.startswith("/")} >= {"/ws", "/stream?streams=...", "/ws-api/v3"}
