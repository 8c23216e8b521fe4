"""Every REST answer and stream message of the Bybit emulator, field by field against Bybit's
documented shapes (tests/fixtures/documented/*.json, compared by realtrade_core.emulator.conformance).

One scene is played on a manual clock: a market buy that fills, a resting limit buy, a cancelled
one; then each endpoint is asked through unmodified ccxt's implicit API (raw JSON, envelope
included) and each stream message is taken off a real WebSocket. Every route the dialect serves
must have a documented shape here, and every shape a test.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from realtrade_core.emulator.conformance import check_fixture, load_fixture

FIXTURES = Path(__file__).parent / "fixtures" / "documented"
SPOT = {"category": "spot", "symbol": "BTCUSDT"}


def auth_message(api_key: str, secret: str) -> dict[str, Any]:
    expires = int(time.time() * 1000) + 10_000
    signature = hmac.new(secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
    return {"op": "auth", "args": [api_key, expires, signature]}


class Scene:
    """An emulator with a little history: one filled, one resting and one cancelled order."""

    def __init__(self, emulator: Any, stream: Callable[[str], Any]) -> None:
        self.emulator = emulator
        self.stream = stream
        self.client = emulator.ccxt_client(options={"defaultType": "spot"})
        self.client.load_markets()
        self.private = stream(emulator.urls["ws_private"])
        self.auth_reply = self.private.request(auth_message(emulator.api_key, emulator.secret))
        self.subscribe_reply = self.private.request({"op": "subscribe", "args": ["order", "execution", "wallet"]})
        self.private_pong = self.private.request({"op": "ping", "req_id": "hb"})
        last = emulator.engine.last_price("BTCUSDT")
        self.below = str(int(last * Decimal("0.9")))
        self.filled = self.client.create_order("BTC/USDT", "market", "buy", 0.01, None, {"marketUnit": "baseCoin"})
        self.resting = self.client.create_order("BTC/USDT", "limit", "buy", 0.01, float(self.below))
        cancelled = self.client.create_order("BTC/USDT", "limit", "buy", 0.01, float(self.below))
        self.cancel_reply = self.client.privatePostV5OrderCancel({**SPOT, "orderId": cancelled["id"]})

    def private_push(self, topic: str) -> dict[str, Any]:
        return self.private.recv_until(lambda m: m.get("topic") == topic)

    def public_push(self, topic: str) -> dict[str, Any]:
        public = self.stream(self.emulator.urls["ws_public"])
        public.request({"op": "subscribe", "args": [topic]})
        self.emulator.step(1)
        return public.recv_until(lambda m: m.get("topic") == topic)

    def public_reply(self, message: dict[str, Any]) -> dict[str, Any]:
        return self.stream(self.emulator.urls["ws_public"]).request(message)

    def unsigned_error(self) -> dict[str, Any]:
        url = self.emulator.urls["rest"] + "/v5/order/realtime?category=spot"
        with urllib.request.urlopen(url, timeout=5) as response:  # Bybit answers errors with HTTP 200
            return json.loads(response.read())

    def cancel_all(self) -> dict[str, Any]:
        order = self.client.create_order("BTC/USDT", "limit", "buy", 0.01, float(self.below))
        answer = self.client.privatePostV5OrderCancelAll(SPOT)
        assert [o["orderId"] for o in answer["result"]["list"]] == [self.resting["id"], order["id"]]
        return answer


#: fixture name -> how to get the emulator's answer for it.
PRODUCERS: dict[str, Callable[[Scene], Any]] = {
    "rest_market_time": lambda s: s.client.publicGetV5MarketTime(),
    "rest_system_status": lambda s: s.client.publicGetV5SystemStatus(),
    "rest_instruments_info_spot": lambda s: s.client.publicGetV5MarketInstrumentsInfo({"category": "spot"}),
    "rest_market_kline": lambda s: s.client.publicGetV5MarketKline({**SPOT, "interval": "1", "limit": 3}),
    "rest_market_tickers_spot": lambda s: s.client.publicGetV5MarketTickers({"category": "spot"}),
    "rest_market_orderbook": lambda s: s.client.publicGetV5MarketOrderbook({**SPOT, "limit": 1}),
    "rest_market_recent_trade": lambda s: s.client.publicGetV5MarketRecentTrade({**SPOT, "limit": 5}),
    "rest_user_query_api": lambda s: s.client.privateGetV5UserQueryApi(),
    "rest_account_info": lambda s: s.client.privateGetV5AccountInfo(),
    "rest_account_wallet_balance": lambda s: s.client.privateGetV5AccountWalletBalance({"accountType": "UNIFIED"}),
    "rest_account_fee_rate": lambda s: s.client.privateGetV5AccountFeeRate(SPOT),
    "rest_asset_coin_query_info": lambda s: s.client.privateGetV5AssetCoinQueryInfo(),
    "rest_spot_margin_trade_state": lambda s: s.client.privateGetV5SpotMarginTradeState(),
    "rest_order_create": lambda s: s.client.privatePostV5OrderCreate(
        {**SPOT, "side": "Buy", "orderType": "Limit", "qty": "0.01", "price": s.below, "orderLinkId": "documented-1"}
    ),
    "rest_order_cancel": lambda s: s.cancel_reply,
    "rest_order_cancel_all": lambda s: s.cancel_all(),
    "rest_order_realtime": lambda s: s.client.privateGetV5OrderRealtime(SPOT),
    "rest_order_history": lambda s: s.client.privateGetV5OrderHistory(SPOT),
    "rest_execution_list": lambda s: s.client.privateGetV5ExecutionList(SPOT),
    "rest_error": lambda s: s.unsigned_error(),
    "ws_public_subscribe_response": lambda s: s.public_reply({"op": "subscribe", "args": ["kline.1.BTCUSDT"]}),
    "ws_public_pong": lambda s: s.public_reply({"op": "ping"}),
    "ws_kline": lambda s: s.public_push("kline.1.BTCUSDT"),
    "ws_public_trade": lambda s: s.public_push("publicTrade.BTCUSDT"),
    "ws_tickers_spot": lambda s: s.public_push("tickers.BTCUSDT"),
    "ws_orderbook_snapshot": lambda s: s.public_push("orderbook.1.BTCUSDT"),
    "ws_private_auth_response": lambda s: s.auth_reply,
    "ws_private_subscribe_response": lambda s: s.subscribe_reply,
    "ws_private_pong": lambda s: s.private_pong,
    "ws_order": lambda s: s.private_push("order"),
    "ws_execution": lambda s: s.private_push("execution"),
    "ws_wallet": lambda s: s.private_push("wallet"),
}


@pytest.fixture
def scene(emulator: Any, stream: Callable[[str], Any]) -> Scene:
    return Scene(emulator, stream)


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
    served = {
        f"{route.method} {route.path}"
        for route in emulator.dialect.routes()
        if route.method in ("GET", "POST", "DELETE") and route.path.startswith("/v5/")
        and not route.path.startswith(("/v5/public", "/v5/private"))
        # The linear category's own endpoints (perpetuals) are held to their shapes in
        # test_emulator_linear.py.
        and not route.path.startswith(("/v5/position/", "/v5/account/set-margin-mode",
                                       "/v5/account/transaction-log", "/v5/market/funding/",
                                       "/v5/market/mark-price-kline"))
    }  # fmt: skip
    assert served - documented == set()
    streams = {e.split(" ", 1)[0] for e in documented if e.startswith("/v5/")}
    assert streams == {"/v5/public/spot", "/v5/private"}
