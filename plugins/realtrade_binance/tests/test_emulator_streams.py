"""The Binance emulator's WebSocket dialect with a plain websocket-client: market streams on
``/ws/<stream>``, ``/stream?streams=`` and by SUBSCRIBE, user data over the WebSocket API, and
the keepalive rules."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
import websocket

MARKET_ID = "BTCUSDT"
SYMBOL = "BTC/USDT"

KLINE_FIELDS = {"t", "T", "s", "i", "f", "L", "o", "c", "h", "l", "v", "n", "x", "q", "V", "Q", "B"}
EXECUTION_REPORT_FIELDS = {
    "e", "E", "s", "c", "S", "o", "f", "q", "p", "P", "F", "g", "C", "x", "X", "r", "i", "l", "z", "L", "n",
    "N", "T", "t", "I", "w", "m", "M", "O", "Z", "Y", "Q", "V",
}  # fmt: skip


def is_decimal_string(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def check_kline(payload: dict[str, Any], interval: str = "1m") -> None:
    assert set(payload) == {"e", "E", "s", "k"}
    assert (payload["e"], payload["s"]) == ("kline", MARKET_ID)
    k = payload["k"]
    assert set(k) == KLINE_FIELDS
    assert (k["s"], k["i"]) == (MARKET_ID, interval)
    assert all(isinstance(k[f], int) and not isinstance(k[f], bool) for f in ("t", "T", "f", "L", "n"))
    assert all(is_decimal_string(k[f]) for f in ("o", "c", "h", "l", "v", "q", "V", "Q"))
    assert isinstance(k["x"], bool) and isinstance(payload["E"], int)


def check_trade(payload: dict[str, Any]) -> None:
    assert set(payload) == {"e", "E", "s", "t", "p", "q", "T", "m", "M"}
    assert (payload["e"], payload["s"]) == ("trade", MARKET_ID)
    assert isinstance(payload["t"], int) and isinstance(payload["T"], int) and isinstance(payload["m"], bool)
    assert is_decimal_string(payload["p"]) and is_decimal_string(payload["q"])


def check_agg_trade(payload: dict[str, Any]) -> None:
    assert set(payload) == {"e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"}
    assert (payload["e"], payload["s"]) == ("aggTrade", MARKET_ID)
    assert all(isinstance(payload[f], int) for f in ("a", "f", "l", "T"))
    assert is_decimal_string(payload["p"]) and is_decimal_string(payload["q"])


def check_book_ticker(payload: dict[str, Any]) -> None:
    assert set(payload) == {"u", "s", "b", "B", "a", "A"}
    assert payload["s"] == MARKET_ID and isinstance(payload["u"], int)
    assert all(is_decimal_string(payload[f]) for f in ("b", "B", "a", "A"))
    assert float(payload["b"]) < float(payload["a"])


CHECKS = {
    "btcusdt@kline_1m": check_kline,
    "btcusdt@trade": check_trade,
    "btcusdt@aggTrade": check_agg_trade,
    "btcusdt@bookTicker": check_book_ticker,
}


def is_reply(request_id: int) -> Any:
    return lambda m: isinstance(m, dict) and m.get("id") == request_id and ("result" in m or "error" in m)


def barrier(ws: websocket.WebSocket, recv_until: Any, request_id: int = 999) -> list[Any]:
    """Everything the server queued before it answers a LIST_SUBSCRIPTIONS (the answer last)."""
    ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": request_id}))
    return recv_until(ws, is_reply(request_id))[1]


def open_streams(url: str, ws_connect: Any, recv_until: Any) -> websocket.WebSocket:
    """Connect and wait until the server has subscribed the streams named in the URL."""
    ws = ws_connect(url)
    barrier(ws, recv_until, 0)
    return ws


def rest_klines(exchange: Any, interval: str, start: int, limit: int = 1000) -> dict[int, list[Any]]:
    rows = exchange.publicGetKlines({"symbol": MARKET_ID, "interval": interval, "startTime": start, "limit": limit})
    return {row[0]: row for row in rows}


def kline_as_row(k: dict[str, Any]) -> list[Any]:
    """The fields a kline event shares with a REST kline row, in the row's order."""
    return [k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"]]


def subscribe_user_data(ws: websocket.WebSocket, emulator: Any, recv_until: Any, secret: str | None = None) -> Any:
    timestamp = int(time.time() * 1000)
    payload = f"apiKey={emulator.api_key}&timestamp={timestamp}"
    signature = hmac.new((secret or emulator.secret).encode(), payload.encode(), hashlib.sha256).hexdigest()
    ws.send(
        json.dumps(
            {
                "id": "sub-1",
                "method": "userDataStream.subscribe.signature",
                "params": {"apiKey": emulator.api_key, "timestamp": timestamp, "signature": signature},
            }
        )
    )
    return recv_until(ws, lambda m: m.get("id") == "sub-1")[0]


# --- market streams --------------------------------------------------------------------------


@pytest.mark.parametrize("stream", sorted(CHECKS))
def test_raw_stream_delivers_the_documented_payload(
    emulator: Any, ws_connect: Any, recv_until: Any, stream: str
) -> None:
    ws = open_streams(f"{emulator.base_ws}/ws/{stream}", ws_connect, recv_until)

    emulator.step(1)

    message, _ = recv_until(ws, lambda m: "result" not in m)
    CHECKS[stream](message)


def test_combined_stream_wraps_each_payload_with_its_stream_name(
    emulator: Any, ws_connect: Any, recv_until: Any
) -> None:
    names = sorted(CHECKS)
    ws = open_streams(f"{emulator.base_ws}/stream?streams={'/'.join(names)}", ws_connect, recv_until)

    emulator.step(1)

    messages = [m for m in barrier(ws, recv_until) if "stream" in m]
    assert {m["stream"] for m in messages} == set(names)
    for message in messages:
        assert set(message) == {"stream", "data"}
        CHECKS[message["stream"]](message["data"])


def test_subscribe_message_starts_every_stream_type(emulator: Any, ws_connect: Any, recv_until: Any) -> None:
    ws = ws_connect(f"{emulator.base_ws}/ws")
    names = sorted(CHECKS)

    ws.send(json.dumps({"method": "SUBSCRIBE", "params": names, "id": 1}))
    reply, _ = recv_until(ws, is_reply(1))
    emulator.step(1)

    assert reply == {"result": None, "id": 1}
    messages = barrier(ws, recv_until)
    assert messages[-1] == {"result": names, "id": 999}
    seen = {"kline": check_kline, "trade": check_trade, "aggTrade": check_agg_trade}
    kinds = set()
    for message in messages[:-1]:
        kind = message.get("e", "bookTicker")
        (seen.get(kind) or check_book_ticker)(message)
        kinds.add(kind)
    assert kinds == {"kline", "trade", "aggTrade", "bookTicker"}


def test_combined_stream_takes_subscriptions_too(emulator: Any, ws_connect: Any, recv_until: Any) -> None:
    ws = open_streams(f"{emulator.base_ws}/stream?streams=btcusdt@trade", ws_connect, recv_until)

    ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 2}))
    recv_until(ws, is_reply(2))
    emulator.step(1)

    streams = {m["stream"] for m in barrier(ws, recv_until) if "stream" in m}
    assert streams == {"btcusdt@trade", "btcusdt@bookTicker"}


def test_unsubscribe_stops_the_stream(emulator: Any, ws_connect: Any, recv_until: Any) -> None:
    ws = open_streams(f"{emulator.base_ws}/ws/btcusdt@trade", ws_connect, recv_until)

    ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@trade"], "id": 3}))
    reply, _ = recv_until(ws, is_reply(3))
    emulator.step(1)

    assert reply == {"result": None, "id": 3}
    assert barrier(ws, recv_until) == [{"result": [], "id": 999}]


def raw_texts(ws: websocket.WebSocket, request_id: int = 999) -> list[str]:
    """The text frames the server queued before it answers a LIST_SUBSCRIPTIONS, as sent."""
    ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": request_id}))
    texts = []
    while not is_reply(request_id)(json.loads(text := ws.recv())):  # the socket timeout bounds each read
        texts.append(text)
    return texts


def test_a_stream_shared_by_two_connections_reaches_each_until_it_leaves(
    emulator: Any, ws_connect: Any, recv_until: Any, wait_until: Any
) -> None:
    url = f"{emulator.base_ws}/ws/btcusdt@kline_1m"
    first, second = open_streams(url, ws_connect, recv_until), open_streams(url, ws_connect, recv_until)
    other = open_streams(f"{emulator.base_ws}/ws/btcusdt@kline_5m", ws_connect, recv_until)

    emulator.step(2)
    both = raw_texts(first)
    assert both and both == raw_texts(second)  # the same bytes, in the same order
    assert all(json.loads(t)["k"]["i"] == "1m" for t in both)

    first.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": 3}))
    recv_until(first, is_reply(3))
    emulator.step(2)
    assert raw_texts(first) == []
    later = raw_texts(second)
    assert later and json.loads(later[0])["E"] > json.loads(both[-1])["E"]

    second.close()
    # The hub forgets a connection's subscriptions when the server has seen it go.
    wait_until(lambda: emulator.hub.subscribers("btcusdt@kline_1m") == 0, timeout=5.0, what="the index to drop it")
    first.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": 4}))
    recv_until(first, is_reply(4))
    emulator.step(1)
    again = raw_texts(first)
    assert again and all(json.loads(t)["k"]["i"] == "1m" for t in again)
    assert all(json.loads(t)["k"]["i"] == "5m" for t in raw_texts(other))


def test_a_longer_kline_resubscribed_mid_bucket_counts_the_candles_it_missed(
    emulator: Any, exchange: Any, ws_connect: Any, recv_until: Any
) -> None:
    now = emulator.engine.now()
    emulator.step(-now % 300_000 // 60_000)  # to the start of a 5m bucket
    ws = open_streams(f"{emulator.base_ws}/ws/btcusdt@kline_5m", ws_connect, recv_until)
    emulator.step(1)  # the bucket's first candle, streamed
    ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@kline_5m"], "id": 3}))
    recv_until(ws, is_reply(3))
    emulator.step(1)  # its second, while nobody listens

    ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@kline_5m"], "id": 4}))
    recv_until(ws, is_reply(4))
    emulator.step(1)

    latest = [m for m in barrier(ws, recv_until) if m.get("e") == "kline"][-1]["k"]
    assert latest["x"] is False and latest["t"] == emulator.engine.now() - emulator.engine.now() % 300_000
    assert kline_as_row(latest) == rest_klines(exchange, "5m", latest["t"])[latest["t"]][:9]


def test_unknown_stream_gets_an_error_reply(emulator: Any, ws_connect: Any, recv_until: Any) -> None:
    ws = ws_connect(f"{emulator.base_ws}/ws")

    ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@nonsense"], "id": 7}))

    reply, _ = recv_until(ws, is_reply(7))
    assert reply["id"] == 7 and set(reply) == {"error", "id"}
    assert reply["error"]["code"] == 2 and "btcusdt@nonsense" in reply["error"]["msg"]


def test_unknown_stream_in_the_url_is_refused(emulator: Any) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(f"{emulator.base_ws}/ws/btcusdt@nonsense", timeout=5)

    assert info.value.status_code == 400


def test_server_shutdown_event_reaches_combined_connections(emulator: Any, ws_connect: Any, recv_until: Any) -> None:
    ws = open_streams(f"{emulator.base_ws}/stream?streams=btcusdt@trade", ws_connect, recv_until)

    sent = emulator.dialect.send_server_shutdown()

    message, _ = recv_until(ws, lambda m: m.get("stream") == "!serverShutdown")
    assert sent == 1
    assert message["data"]["e"] == "serverShutdown" and isinstance(message["data"]["E"], int)


def test_unknown_method_gets_an_error_reply(emulator: Any, ws_connect: Any, recv_until: Any) -> None:
    ws = ws_connect(f"{emulator.base_ws}/ws")

    ws.send(json.dumps({"method": "SUBSCRIB", "params": [], "id": 8}))

    reply, _ = recv_until(ws, is_reply(8))
    assert reply["error"]["code"] == 2 and "unknown variant `SUBSCRIB`" in reply["error"]["msg"]


@pytest.mark.parametrize(("interval", "interval_ms"), [("1m", 60_000), ("5m", 300_000)])
def test_each_kline_is_closed_exactly_once_with_the_rest_values(
    emulator: Any, exchange: Any, ws_connect: Any, recv_until: Any, interval: str, interval_ms: int
) -> None:
    ws = open_streams(f"{emulator.base_ws}/ws/btcusdt@kline_{interval}", ws_connect, recv_until)
    start = emulator.engine.now()

    end = emulator.step(12)

    events = [m for m in barrier(ws, recv_until) if m.get("e") == "kline"]
    for event in events:
        check_kline(event, interval)
    closed = [e["k"] for e in events if e["k"]["x"]]
    # Every candle that ended while the clock moved, once each, in order.
    first = start - start % interval_ms
    assert [k["t"] for k in closed] == [t for t in range(first, end, interval_ms) if t + interval_ms <= end]
    rest = rest_klines(exchange, interval, first)
    assert [kline_as_row(k) for k in closed] == [rest[k["t"]][:9] for k in closed]
    # Nothing of a candle arrives after its final update.
    for k in closed:
        last_index = max(i for i, e in enumerate(events) if e["k"]["t"] == k["t"])
        assert events[last_index]["k"]["x"] is True


def test_forming_kline_updates_match_the_rest_forming_candle(
    emulator: Any, exchange: Any, ws_connect: Any, recv_until: Any
) -> None:
    ws = open_streams(f"{emulator.base_ws}/ws/btcusdt@kline_15m", ws_connect, recv_until)

    emulator.advance(30_000)  # half a source candle: the 15m candle is forming

    events = [m for m in barrier(ws, recv_until) if m.get("e") == "kline"]
    latest = events[-1]["k"]
    assert latest["x"] is False
    assert kline_as_row(latest) == rest_klines(exchange, "15m", latest["t"])[latest["t"]][:9]


# --- user data over the WebSocket API ----------------------------------------------------------


def test_user_data_subscription_answers_with_a_subscription_id(emulator: Any, ws_connect: Any, recv_until: Any) -> None:
    ws = ws_connect(emulator.urls["ws_api"])

    answer = subscribe_user_data(ws, emulator, recv_until)

    assert (answer["status"], answer["result"]) == (200, {"subscriptionId": 0})
    assert answer["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT"


def test_order_placed_over_rest_streams_new_then_trade_and_the_balances(
    emulator: Any, exchange: Any, ws_connect: Any, recv_until: Any
) -> None:
    ws = ws_connect(emulator.urls["ws_api"])
    subscribe_user_data(ws, emulator, recv_until)

    order = exchange.create_order(SYMBOL, "market", "buy", 0.01)

    placed = emulator.engine.get_order(emulator.api_key, MARKET_ID, order_id=int(order["id"]))
    fill = placed.fills[0]

    def is_trade(m: Any) -> bool:
        return m["event"]["e"] == "executionReport" and m["event"]["x"] == "TRADE"

    _, seen = recv_until(ws, is_trade)
    position, _ = recv_until(ws, lambda m: m["event"]["e"] == "outboundAccountPosition")
    reports = [m["event"] for m in seen if m["event"]["e"] == "executionReport"]
    assert all(m["subscriptionId"] == 0 for m in seen)
    assert [(r["x"], r["X"]) for r in reports] == [("NEW", "NEW"), ("TRADE", "FILLED")]
    for report in reports:
        assert set(report) == EXECUTION_REPORT_FIELDS
        assert (report["s"], report["c"], report["i"], report["S"], report["o"]) == (
            MARKET_ID,
            order["clientOrderId"],
            int(order["id"]),
            "BUY",
            "MARKET",
        )
    trade = reports[1]
    assert (trade["l"], trade["z"], trade["L"], trade["n"], trade["N"], trade["t"], trade["m"]) == (
        "0.01000000",
        "0.01000000",
        f"{fill.price:.8f}",
        f"{fill.fee:.8f}",
        "BTC",
        fill.trade_id,
        False,
    )
    balances = {b.asset: b for b in emulator.engine.balances(emulator.api_key)}
    for entry in position["event"]["B"]:
        held = balances[entry["a"]]
        assert (entry["f"], entry["l"]) == (f"{held.free:.8f}", f"{held.locked:.8f}")


def test_cancel_streams_a_canceled_report_naming_the_original_order(
    emulator: Any, exchange: Any, ws_connect: Any, recv_until: Any
) -> None:
    ws = ws_connect(emulator.urls["ws_api"])
    subscribe_user_data(ws, emulator, recv_until)
    price = float(emulator.engine.last_price(MARKET_ID)) * 0.9
    order = exchange.create_order(SYMBOL, "limit", "buy", 0.01, price, {"clientOrderId": "to-cancel"})

    canceled = exchange.cancel_order(order["id"], SYMBOL)

    report, _ = recv_until(ws, lambda m: m["event"].get("x") == "CANCELED")
    event = report["event"]
    assert (event["X"], event["i"], event["C"], event["c"]) == (
        "CANCELED",
        int(order["id"]),
        "to-cancel",
        canceled["clientOrderId"],
    )


def place_sell_oco(exchange: Any, emulator: Any, limit_ticks: int, stop_ticks: int) -> dict[str, Any]:
    """A SELL OCO of 0.01 BTC: LIMIT_MAKER ``limit_ticks`` above the last price, STOP_LOSS
    ``stop_ticks`` below it (ccxt's implicit call, as BinanceExecution sends it)."""
    last = emulator.engine.last_price(MARKET_ID)
    tick = emulator.engine.market(MARKET_ID).tick_size
    return exchange.privatePostOrderListOco(
        {
            "symbol": MARKET_ID,
            "side": "SELL",
            "quantity": "0.01",
            "aboveType": "LIMIT_MAKER",
            "abovePrice": str(last + limit_ticks * tick),
            "belowType": "STOP_LOSS",
            "belowStopPrice": str(last - stop_ticks * tick),
        }
    )


def user_events(seen: list[Any], kind: str) -> list[dict[str, Any]]:
    return [m["event"] for m in seen if m["event"]["e"] == kind]


def test_oco_legs_stream_their_list_id_and_the_list_status(
    emulator: Any, exchange: Any, ws_connect: Any, recv_until: Any
) -> None:
    ws = ws_connect(emulator.urls["ws_api"])
    subscribe_user_data(ws, emulator, recv_until)

    answer = place_sell_oco(exchange, emulator, 1, 2000)

    list_id = answer["orderListId"]
    limit_id, stop_id = (o["orderId"] for o in answer["orders"])
    started, seen = recv_until(ws, lambda m: m["event"]["e"] == "listStatus")
    reports = user_events(seen, "executionReport")
    assert [(r["i"], r["x"], r["X"], r["o"], r["g"]) for r in reports] == [
        (limit_id, "NEW", "NEW", "LIMIT_MAKER", list_id),
        (stop_id, "NEW", "NEW", "STOP_LOSS", list_id),
    ]
    assert [set(r) - EXECUTION_REPORT_FIELDS for r in reports] == [{"W"}, set()]  # W: on the book
    event = started["event"]
    assert (event["g"], event["c"], event["l"], event["L"], event["C"], event["s"]) == (
        list_id,
        "OCO",
        "EXEC_STARTED",
        "EXECUTING",
        answer["listClientOrderId"],
        MARKET_ID,
    )
    assert event["O"] == [{"s": MARKET_ID, "i": o["orderId"], "c": o["clientOrderId"]} for o in answer["orders"]]

    for _ in range(300):
        if emulator.engine.get_order(emulator.api_key, MARKET_ID, order_id=limit_id).status.value == "filled":
            break
        emulator.step(1)
    done, seen = recv_until(ws, lambda m: m["event"]["e"] == "listStatus")
    reports = user_events(seen, "executionReport")
    assert [(r["i"], r["x"], r["X"], r["g"]) for r in reports] == [
        (limit_id, "TRADE", "FILLED", list_id),
        (stop_id, "EXPIRED", "EXPIRED", list_id),
    ]
    assert (done["event"]["g"], done["event"]["l"], done["event"]["L"]) == (list_id, "ALL_DONE", "ALL_DONE")


def test_cancelling_one_oco_leg_streams_both_cancellations(
    emulator: Any, exchange: Any, ws_connect: Any, recv_until: Any
) -> None:
    ws = ws_connect(emulator.urls["ws_api"])
    subscribe_user_data(ws, emulator, recv_until)
    answer = place_sell_oco(exchange, emulator, 1000, 1000)
    recv_until(ws, lambda m: m["event"]["e"] == "listStatus")
    limit, stop = answer["orders"]

    exchange.cancel_order(str(limit["orderId"]), SYMBOL)

    done, seen = recv_until(ws, lambda m: m["event"]["e"] == "listStatus")
    reports = user_events(seen, "executionReport")
    assert [(r["i"], r["x"], r["X"], r["C"], r["g"]) for r in reports] == [
        (limit["orderId"], "CANCELED", "CANCELED", limit["clientOrderId"], answer["orderListId"]),
        (stop["orderId"], "CANCELED", "CANCELED", stop["clientOrderId"], answer["orderListId"]),
    ]
    assert (done["event"]["l"], done["event"]["L"]) == ("ALL_DONE", "ALL_DONE")


def test_bad_signature_on_the_websocket_api_is_refused(emulator: Any, ws_connect: Any, recv_until: Any) -> None:
    ws = ws_connect(emulator.urls["ws_api"])

    answer = subscribe_user_data(ws, emulator, recv_until, secret="0" * 64)

    assert answer["status"] == 400
    assert answer["error"] == {"code": -1022, "msg": "Signature for this request is not valid."}


def test_event_stream_terminated_ends_the_subscription(
    emulator: Any, exchange: Any, ws_connect: Any, recv_until: Any
) -> None:
    ws = ws_connect(emulator.urls["ws_api"])
    subscribe_user_data(ws, emulator, recv_until)

    ended = emulator.dialect.terminate_user_data_streams()
    exchange.create_order(SYMBOL, "market", "buy", 0.01)

    assert ended == 1
    ws.send(json.dumps({"id": "after", "method": "ping"}))
    _, seen = recv_until(ws, lambda m: m.get("id") == "after")
    assert seen[0]["subscriptionId"] == 0 and seen[0]["event"]["e"] == "eventStreamTerminated"
    assert isinstance(seen[0]["event"]["E"], int)
    assert seen[1:-1] == []  # no user data after the termination
    assert (seen[-1]["status"], seen[-1]["result"]) == (200, {})


def test_websocket_api_time_is_the_server_time(emulator: Any, ws_connect: Any, recv_until: Any) -> None:
    ws = ws_connect(emulator.urls["ws_api"])
    before = int(time.time() * 1000)

    ws.send(json.dumps({"id": 5, "method": "time"}))

    answer, _ = recv_until(ws, lambda m: m.get("id") == 5)
    assert answer["status"] == 200
    assert before <= answer["result"]["serverTime"] <= int(time.time() * 1000)


# --- keepalive -------------------------------------------------------------------------------


def test_server_sends_ping_frames(make_emulator: Any, ws_connect: Any) -> None:
    emulator = make_emulator(settings={"ping_interval": 0.1, "pong_timeout": 5.0})
    ws = ws_connect(f"{emulator.base_ws}/ws/btcusdt@trade")

    opcode, _ = ws.recv_data_frame(control_frame=True)

    assert opcode == websocket.ABNF.OPCODE_PING


def test_client_that_does_not_pong_is_disconnected(
    make_emulator: Any, ws_connect: Any, recv_until: Any, wait_until: Any
) -> None:
    emulator = make_emulator(settings={"ping_interval": 0.1, "pong_timeout": 0.4})
    ws = open_streams(f"{emulator.base_ws}/ws/btcusdt@trade", ws_connect, recv_until)

    # From here the client reads nothing, so it answers no ping.
    wait_until(lambda: not emulator.hub.connections(), timeout=5.0, what="the server to drop the client")

    closed = False
    for _ in range(1000):  # what the client still finds: pings, then the close frame or the end
        try:
            opcode, _ = ws.recv_data_frame(control_frame=True)
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            closed = True
            break
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            closed = True
            break
    assert closed


def test_client_that_pongs_stays_connected(make_emulator: Any, ws_connect: Any, recv_until: Any) -> None:
    emulator = make_emulator(settings={"ping_interval": 0.1, "pong_timeout": 0.4})
    ws = ws_connect(f"{emulator.base_ws}/ws/btcusdt@trade")
    deadline = time.monotonic() + 1.0
    pings = 0
    while time.monotonic() < deadline:
        opcode, _ = ws.recv_data_frame(control_frame=True)  # answers each ping with a pong
        pings += opcode == websocket.ABNF.OPCODE_PING

    answer = barrier(ws, recv_until)

    assert pings >= 3
    assert answer == [{"result": ["btcusdt@trade"], "id": 999}]


def test_connection_is_closed_at_the_end_of_its_lifetime(make_emulator: Any, ws_connect: Any) -> None:
    emulator = make_emulator(settings={"max_lifetime": 0.3})
    ws = ws_connect(f"{emulator.base_ws}/ws/btcusdt@trade")

    opcode = None
    while opcode != websocket.ABNF.OPCODE_CLOSE:
        opcode, _ = ws.recv_data_frame(control_frame=True)

    assert opcode == websocket.ABNF.OPCODE_CLOSE
