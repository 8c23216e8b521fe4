"""Fidelity of the Bybit emulator's WebSocket dialect, seen through a plain websocket-client.

Shapes follow Bybit's v5 documentation for ``/v5/public/spot`` and ``/v5/private``; values are
checked against the engine and against the REST dialect.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from decimal import Decimal

import pytest
import websocket

SYMBOL = "BTC/USDT"
ID = "BTCUSDT"

KLINE_FIELDS = {
    "start", "end", "interval", "open", "close", "high", "low", "volume", "turnover", "confirm", "timestamp",
}  # fmt: skip
ORDER_FIELDS = {
    "orderId", "orderLinkId", "symbol", "side", "orderType", "price", "qty", "orderStatus", "cumExecQty",
    "cumExecValue", "cumExecFee", "avgPrice", "category", "timeInForce", "createdTime", "updatedTime",
    "leavesQty", "triggerPrice", "feeCurrency",
}  # fmt: skip
EXECUTION_FIELDS = {
    "category", "symbol", "execId", "orderId", "orderLinkId", "side", "execPrice", "execQty", "execValue",
    "execFee", "feeCurrency", "execTime", "isMaker", "execType", "orderType", "orderQty", "orderPrice", "feeRate",
}  # fmt: skip


def auth_message(api_key: str, secret: str, expires: int) -> dict:
    signature = hmac.new(secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
    return {"op": "auth", "args": [api_key, expires, signature]}


def topic_is(topic):
    return lambda message: message.get("topic") == topic


@pytest.fixture
def public(emulator, stream):
    return stream(emulator.urls["ws_public"])


@pytest.fixture
def private(emulator, stream):
    client = stream(emulator.urls["ws_private"])
    expires = int(time.time() * 1000) + 10_000
    assert client.request(auth_message(emulator.api_key, emulator.secret, expires))["success"] is True
    return client


# --- public stream ------------------------------------------------------------------------------------


def test_subscribe_is_acknowledged_in_the_documented_shape(public):
    reply = public.request({"op": "subscribe", "args": [f"kline.1.{ID}"], "req_id": "10001"})
    assert set(reply) == {"success", "ret_msg", "conn_id", "req_id", "op"}
    assert (reply["success"], reply["ret_msg"], reply["req_id"], reply["op"]) == (
        True,
        "subscribe",
        "10001",
        "subscribe",
    )


def test_subscribing_to_an_unknown_topic_fails(public):
    reply = public.request({"op": "subscribe", "args": ["kline.7.BTCUSDT"]})
    assert reply["success"] is False and "kline.7.BTCUSDT" in reply["ret_msg"]


def test_kline_push_has_the_documented_shape(emulator, public):
    topic = f"kline.1.{ID}"
    public.request({"op": "subscribe", "args": [topic]})
    emulator.step(1)
    message = public.recv_until(topic_is(topic))
    assert set(message) == {"topic", "data", "ts", "type"} and message["type"] == "snapshot"
    (item,) = message["data"]
    assert set(item) == KLINE_FIELDS and item["interval"] == "1"
    assert item["end"] == item["start"] + 59_999 and isinstance(item["confirm"], bool)
    assert all(isinstance(item[k], str) for k in ("open", "close", "high", "low", "volume", "turnover"))


@pytest.mark.parametrize(("interval", "minutes"), [("1", 1), ("5", 5), ("15", 15)])
def test_each_candle_is_confirmed_once_with_the_rest_values(emulator, exchange, public, interval, minutes):
    topic = f"kline.{interval}.{ID}"
    public.request({"op": "subscribe", "args": [topic]})
    start = emulator.engine.now()
    emulator.step(33)
    end = emulator.engine.now()
    expected_closed = (end // (minutes * 60_000)) - (start // (minutes * 60_000))
    confirmed = public.collect(lambda m: m.get("topic") == topic and m["data"][0]["confirm"], expected_closed)
    starts = [m["data"][0]["start"] for m in confirmed]
    assert len(set(starts)) == len(starts) == expected_closed  # each candle confirmed exactly once
    rest = exchange.publicGetV5MarketKline(
        {"category": "spot", "symbol": ID, "interval": interval, "start": starts[0], "end": starts[-1]}
    )["result"]["list"]
    by_start = {int(row[0]): row for row in rest}
    for message in confirmed:
        item = message["data"][0]
        row = by_start[item["start"]]
        pushed = [item[k] for k in ("open", "high", "low", "close", "volume", "turnover")]
        assert pushed == row[1:], f"candle {item['start']}"


def test_forming_kline_updates_precede_the_confirmation(emulator, public):
    topic = f"kline.1.{ID}"
    public.request({"op": "subscribe", "args": [topic]})
    emulator.step(2)
    items = [m["data"][0] for m in public.collect(topic_is(topic), 9)]  # 4 path steps + close, twice
    closes = [i for i, item in enumerate(items) if item["confirm"]]
    assert closes, "no candle was confirmed"
    first = closes[0]
    # Updates of a candle all precede its one confirmation; the next update opens a new candle.
    assert all(item["start"] == items[first]["start"] and not item["confirm"] for item in items[:first])
    assert items[first + 1]["start"] == items[first]["start"] + 60_000 and not items[first + 1]["confirm"]


def test_public_trades_arrive_in_the_documented_shape(emulator, public):
    topic = f"publicTrade.{ID}"
    public.request({"op": "subscribe", "args": [topic]})
    emulator.step(1)
    message = public.recv_until(topic_is(topic))
    assert {"topic", "type", "ts", "data"} <= set(message) and message["type"] == "snapshot"
    (trade,) = message["data"]
    assert {"T", "s", "S", "v", "p", "L", "i", "BT"} <= set(trade)
    assert trade["s"] == ID and trade["S"] in ("Buy", "Sell") and float(trade["p"]) > 0
    assert trade["L"] in ("PlusTick", "ZeroPlusTick", "MinusTick", "ZeroMinusTick")


def test_tickers_arrive_in_the_documented_shape(emulator, public):
    topic = f"tickers.{ID}"
    public.request({"op": "subscribe", "args": [topic]})
    emulator.step(1)
    message = public.recv_until(topic_is(topic))
    assert {"topic", "ts", "type", "cs", "data"} == set(message)
    data = message["data"]
    assert set(data) == {
        "symbol", "lastPrice", "highPrice24h", "lowPrice24h", "prevPrice24h", "volume24h", "turnover24h",
        "price24hPcnt", "usdIndexPrice",
    }  # fmt: skip
    assert data["symbol"] == ID and float(data["lastPrice"]) > 0


def test_unsubscribed_topic_stops_pushing(emulator, public):
    trades, klines = f"publicTrade.{ID}", f"kline.1.{ID}"
    public.request({"op": "subscribe", "args": [trades, klines]})
    reply = public.request({"op": "unsubscribe", "args": [trades], "req_id": "u1"})
    assert reply["success"] is True and reply["op"] == "unsubscribe"
    emulator.step(1)
    messages = public.collect(lambda m: "topic" in m, 5)
    assert {m["topic"] for m in messages} == {klines}


def test_public_ping_gets_the_documented_pong(public):
    reply = public.request({"op": "ping"})
    assert set(reply) == {"success", "ret_msg", "conn_id", "op"}
    assert (reply["success"], reply["ret_msg"], reply["op"]) == (True, "pong", "ping")


def test_a_silent_connection_is_cut_after_the_idle_timeout(make_emulator, stream):
    emulator = make_emulator(settings={"idle_timeout": 0.3})
    client = stream(emulator.urls["ws_public"])
    start = time.monotonic()
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        while time.monotonic() - start < 5:
            client.recv(timeout=5)
    assert time.monotonic() - start < 4


def test_pings_keep_a_connection_open(make_emulator, stream):
    emulator = make_emulator(settings={"idle_timeout": 0.5})
    client = stream(emulator.urls["ws_public"])
    for _ in range(4):  # 1.2 s in all, more than twice the idle timeout
        assert client.request({"op": "ping"})["ret_msg"] == "pong"
        time.sleep(0.3)  # the idle gap under test, shorter than the timeout
    assert client.request({"op": "ping"})["success"] is True


# --- private stream -----------------------------------------------------------------------------------


def test_auth_succeeds_in_the_documented_shape(emulator, stream):
    client = stream(emulator.urls["ws_private"])
    expires = int(time.time() * 1000) + 10_000
    reply = client.request({**auth_message(emulator.api_key, emulator.secret, expires), "req_id": "a1"})
    assert reply == {"success": True, "ret_msg": "", "conn_id": reply["conn_id"], "req_id": "a1", "op": "auth"}


def test_auth_with_a_bad_signature_fails(emulator, stream):
    client = stream(emulator.urls["ws_private"])
    expires = int(time.time() * 1000) + 10_000
    reply = client.request(auth_message(emulator.api_key, "wrong-secret", expires))
    assert reply["success"] is False and reply["op"] == "auth"


def test_auth_that_already_expired_fails(emulator, stream):
    client = stream(emulator.urls["ws_private"])
    expires = int(time.time() * 1000) - 1_000
    reply = client.request(auth_message(emulator.api_key, emulator.secret, expires))
    assert reply["success"] is False and reply["op"] == "auth"


def test_private_topics_need_auth_first(emulator, stream):
    client = stream(emulator.urls["ws_private"])
    reply = client.request({"op": "subscribe", "args": ["order"]})
    assert reply["success"] is False and reply["op"] == "subscribe"


def test_private_subscribe_is_acknowledged(private):
    reply = private.request({"op": "subscribe", "args": ["order", "execution", "wallet", "position"]})
    assert set(reply) == {"success", "ret_msg", "conn_id", "op"} and reply["success"] is True


def test_private_ping_gets_the_documented_pong(private):
    reply = private.request({"op": "ping", "req_id": "p1"})
    assert set(reply) == {"req_id", "op", "args", "conn_id"}
    assert reply["op"] == "pong" and reply["req_id"] == "p1" and reply["args"][0].isdigit()


def test_order_placed_over_rest_is_pushed_as_order_execution_and_wallet(emulator, exchange, private):
    private.request({"op": "subscribe", "args": ["order", "execution", "wallet"]})
    placed = exchange.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "push-1"})

    orders = private.collect(topic_is("order"), 2)
    assert all({"id", "topic", "creationTime", "data"} == set(m) for m in orders)
    statuses = [m["data"][0]["orderStatus"] for m in orders]
    assert statuses == ["New", "Filled"]
    filled = orders[-1]["data"][0]
    assert ORDER_FIELDS <= set(filled) and filled["category"] == "spot"
    assert (filled["orderId"], filled["orderLinkId"], filled["side"], filled["orderType"]) == (
        placed["id"],
        "push-1",
        "Buy",
        "Market",
    )

    execution = private.recv_until(topic_is("execution"))["data"][0]
    assert EXECUTION_FIELDS <= set(execution)
    (trade,) = exchange.fetch_my_trades(SYMBOL)
    assert (execution["execId"], execution["orderId"]) == (trade["id"], placed["id"])
    assert float(execution["execPrice"]) == trade["price"] and float(execution["execQty"]) == trade["amount"]
    assert float(execution["execFee"]) == trade["fee"]["cost"] and execution["feeCurrency"] == "BTC"
    assert execution["isMaker"] is False

    engine = {b.asset: b.total for b in emulator.engine.balances(emulator.api_key)}
    latest: dict = {}
    deadline = time.monotonic() + 5
    while latest.get("BTC") != engine["BTC"] and time.monotonic() < deadline:
        wallet = private.recv_until(topic_is("wallet"), timeout=deadline - time.monotonic())
        (account,) = wallet["data"]
        assert account["accountType"] == "UNIFIED"
        latest.update({coin["coin"]: Decimal(coin["walletBalance"]) for coin in account["coin"]})
    assert latest["BTC"] == engine["BTC"] and latest["USDT"] == engine["USDT"]


def test_stop_order_is_pushed_untriggered_then_triggered_then_filled(emulator, exchange, private):
    private.request({"op": "subscribe", "args": ["order"]})
    tick = emulator.engine.market(ID).tick_size
    trigger = emulator.engine.last_price(ID) + tick
    placed = exchange.create_order(SYMBOL, "market", "buy", 0.01, None, {"triggerPrice": float(trigger)})
    first = private.recv_until(topic_is("order"))["data"][0]
    assert (first["orderId"], first["orderStatus"], first["stopOrderType"]) == (placed["id"], "Untriggered", "Stop")
    assert first["triggerPrice"] == str(trigger)
    for _ in range(200):  # step until the price path crosses the trigger
        if not emulator.engine.get_order(emulator.api_key, ID, order_id=int(placed["id"])).status.is_open:
            break
        emulator.step(1)
    statuses = [m["data"][0]["orderStatus"] for m in private.collect(topic_is("order"), 2)]
    assert statuses == ["Triggered", "Filled"]


def test_pushes_reach_only_the_owning_account(make_emulator, stream):
    emulator = make_emulator()
    other = stream(emulator.urls["ws_private"])
    expires = int(time.time() * 1000) + 10_000
    # A second account on the same emulator: it must not see the first one's orders.
    from realtrade_core.emulator.model import AccountConfig

    emulator.engine.add_account(AccountConfig(api_key="other-key", secret="other-secret"))
    assert other.request(auth_message("other-key", "other-secret", expires))["success"] is True
    other.request({"op": "subscribe", "args": ["order"]})
    mine = stream(emulator.urls["ws_private"])
    mine.request(auth_message(emulator.api_key, emulator.secret, expires))
    mine.request({"op": "subscribe", "args": ["order"]})
    emulator.ccxt_client().create_order(SYMBOL, "market", "buy", 0.01)
    mine.recv_until(topic_is("order"))
    other.send({"op": "ping"})
    assert other.recv()["op"] == "pong"  # the first frame since: no order push came before it
