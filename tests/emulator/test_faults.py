"""Fault injection: HTTP faults, accept-then-timeout, clock skew and WebSocket drop/stall/malformed.

In process through the Emulator's methods and over HTTP through ``/_emulator/faults``, against
the real server with the toy dialect (toy_dialect.py).
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from decimal import Decimal

import pytest
import websocket

from realtrade_core.emulator.faults import Faults, HttpFault

# --- helpers ----------------------------------------------------------------------------------------


def request(url: str, body: dict | None = None, headers: dict | None = None, timeout: float = 5.0):
    """(status, headers, JSON body) of a GET (or a POST when ``body`` is given)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read())


def admin(emu, body: dict):
    return request(emu.admin_url + "/faults", body)


def connect(emu, topic: str = "btcusdt@kline", timeout: float = 5.0) -> websocket.WebSocket:
    ws = websocket.create_connection(emu.urls["ws_public"], timeout=timeout)
    ws.send(json.dumps({"subscribe": [topic], "id": 1}))
    assert json.loads(ws.recv()) == {"result": None, "id": 1}
    return ws


def order_body(emu) -> dict:
    # A resting limit buy 10 % under the market, on the tick.
    price = (emu.engine.last_price("BTCUSDT") * Decimal("0.9")).quantize(emu.engine.market("BTCUSDT").tick_size)
    return {"symbol": "BTCUSDT", "side": "buy", "type": "limit", "amount": "0.01", "price": str(price)}


# --- Faults record ------------------------------------------------------------------------------


def test_http_faults_are_consumed_in_order_and_only_on_matching_paths():
    faults = Faults()
    faults.add_http_fault(503, count=2, path_prefix="/api/order")
    faults.add_http_fault(429, retry_after=3)
    first = faults.take_http_fault("/api/ping")
    assert (first.status, first.retry_after) == (429, 3)
    assert faults.take_http_fault("/api/ping") is None
    assert faults.take_http_fault("/api/order").status == 503
    assert faults.take_http_fault("/api/order").status == 503
    assert faults.take_http_fault("/api/order") is None


def test_http_faults_can_be_limited_to_one_method_and_count_down_as_consumed():
    faults = Faults()
    fault = faults.add_http_fault(503, count=2, path_prefix="/api/order", method="delete")
    assert faults.take_http_fault("/api/order", "POST") is None
    assert faults.take_http_fault("/api/order", "GET") is None
    assert faults.take_http_fault("/api/order", "DELETE").method == "DELETE"
    assert fault.count == 1  # the caller's record shows what is left
    assert faults.take_http_fault("/api/order", "DELETE").status == 503
    assert fault.count == 0 and faults.take_http_fault("/api/order", "DELETE") is None


def test_invalid_http_faults_are_refused():
    with pytest.raises(ValueError, match="4xx or 5xx"):
        HttpFault(200)
    with pytest.raises(ValueError, match="count"):
        HttpFault(429, count=0)
    with pytest.raises(ValueError, match="method"):
        HttpFault(500, method="PATCH")


def test_accept_then_timeout_counts_down_and_reset_clears_everything():
    faults = Faults()
    faults.add_accept_then_timeout(2)
    faults.add_http_fault(500)
    faults.set_clock_skew(-700)
    faults.set_response_delay(20)
    faults.stall(60)
    assert faults.stalled
    assert faults.take_accept_then_timeout() and faults.take_accept_then_timeout()
    assert not faults.take_accept_then_timeout()
    faults.reset()
    assert not faults.stalled
    assert faults.snapshot() == {
        "clock_skew_ms": 0,
        "response_delay_ms": 0,
        "http_faults": [],
        "accept_then_timeout": 0,
        "stalled_seconds": 0.0,
    }


# --- HTTP faults through the server ------------------------------------------------------------------


def test_429_uses_the_dialect_error_body_with_retry_after_then_recovers(toy_emulator):
    emu = toy_emulator
    emu.fail_http(429, count=2, retry_after=7)
    for _ in range(2):
        status, headers, body = request(emu.urls["rest"] + "/ping")
        assert status == 429
        assert headers["Retry-After"] == "7"
        assert body == {"code": -429, "msg": "injected 429", "retryAfter": 7}
    assert request(emu.urls["rest"] + "/ping")[0] == 200


@pytest.mark.parametrize("status", [418, 500, 502, 503, 504])
def test_injected_status_without_retry_after_has_no_header(toy_emulator, status):
    emu = toy_emulator
    emu.fail_http(status)
    got, headers, body = request(emu.urls["rest"] + "/ping")
    assert (got, body["code"]) == (status, -status)
    assert "Retry-After" not in headers


def test_path_prefix_limits_the_fault_to_matching_requests(toy_emulator):
    emu = toy_emulator
    emu.fail_http(503, path_prefix="/api/time")
    assert request(emu.urls["rest"] + "/ping")[0] == 200
    assert request(emu.urls["rest"] + "/time")[0] == 503
    assert request(emu.urls["rest"] + "/time")[0] == 200


def test_http_faults_spare_the_admin_api_and_websocket_handshakes(toy_emulator):
    emu = toy_emulator
    emu.fail_http(500, count=5)
    assert request(emu.admin_url + "/state")[0] == 200
    connect(emu).close()
    assert emu.faults.snapshot()["http_faults"][0]["count"] == 5


def test_response_delay_slows_every_rest_answer(toy_emulator):
    emu = toy_emulator
    emu.set_response_delay(300)
    started = time.monotonic()
    assert request(emu.urls["rest"] + "/ping")[0] == 200
    assert time.monotonic() - started >= 0.3
    emu.set_response_delay(0)
    started = time.monotonic()
    request(emu.urls["rest"] + "/ping")
    assert time.monotonic() - started < 0.3


def test_clock_skew_shifts_the_server_time_the_dialect_reports(toy_emulator):
    emu = toy_emulator
    emu.set_clock_skew(-5000)
    before = time.time() * 1000
    server_time = request(emu.urls["rest"] + "/time")[2]["serverTime"]
    after = time.time() * 1000
    # Time endpoints report the wall clock (clients sign with theirs), shifted by the skew.
    assert before - 5000 - 1 <= server_time <= after - 5000 + 1


def test_order_is_accepted_but_never_answered(toy_emulator):
    emu = toy_emulator
    key = {"X-KEY": emu.api_key}
    emu.timeout_next_order()
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        request(emu.urls["rest"] + "/order", order_body(emu), key, timeout=0.5)
    # The client got nothing, yet the engine has the order: retrying blindly would duplicate it.
    orders = emu.engine.all_orders(emu.api_key)
    assert [o.status.value for o in orders] == ["new"]
    # Only that one order was affected: the next placement is answered.
    status, _, body = request(emu.urls["rest"] + "/order", order_body(emu), key)
    assert status == 200 and body["orderId"] != orders[0].order_id
    assert len(request(emu.urls["rest"] + "/orders", headers=key)[2]) == 2


def test_accept_then_timeout_spares_non_order_requests(toy_emulator):
    emu = toy_emulator
    emu.timeout_next_order(1)
    assert request(emu.urls["rest"] + "/ping", timeout=2)[0] == 200
    assert emu.faults.accept_then_timeout == 1


def test_stop_cuts_a_withheld_order_request_without_answering_it(toy_dialect, wait_until):
    from realtrade_core.emulator import Emulator

    emu = Emulator(toy_dialect, speed=None, history=20).start()
    emu.timeout_next_order()
    body = json.dumps(order_body(emu)).encode()
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as sock:
        sock.sendall(
            b"POST /api/order HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"X-KEY: {emu.api_key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        wait_until(lambda: emu.engine.all_orders(emu.api_key))
        started = time.monotonic()
        emu.stop()
        assert time.monotonic() - started < 3
        try:
            answer = sock.recv(65536)
        except ConnectionError:
            answer = b""
        assert answer == b""  # the connection ends without a single byte of response


# --- admin endpoint ---------------------------------------------------------------------------------


def test_admin_faults_endpoint_sets_each_switch(toy_emulator):
    emu = toy_emulator
    status, _, body = admin(
        emu,
        {
            "http_status": 429,
            "count": 2,
            "retry_after": 1,
            "path_prefix": "/api",
            "timeout_next_order": 1,
            "clock_skew_ms": 5000,
            "response_delay_ms": 10,
        },
    )
    assert status == 200
    assert body["faults"] == {
        "clock_skew_ms": 5000,
        "response_delay_ms": 10,
        "http_faults": [{"status": 429, "count": 2, "retry_after": 1, "path_prefix": "/api", "method": ""}],
        "accept_then_timeout": 1,
        "stalled_seconds": 0.0,
    }
    assert request(emu.urls["rest"] + "/ping")[0] == 429
    status, _, body = admin(emu, {"reset": True})
    assert status == 200 and body["faults"]["http_faults"] == []
    assert request(emu.urls["rest"] + "/ping")[0] == 200


def test_admin_faults_endpoint_rejects_unknown_keys_and_bad_values_without_applying(toy_emulator):
    emu = toy_emulator
    status, _, body = admin(emu, {"clock_skew_ms": 100, "explode": True})
    assert status == 400 and "explode" in body["error"]
    status, _, body = admin(emu, {"clock_skew_ms": 100, "http_status": 200})
    assert status == 400 and "4xx or 5xx" in body["error"]
    status, _, body = admin(emu, {"stall_seconds": "long"})
    assert status == 400 and "stall_seconds" in body["error"]
    assert emu.faults.clock_skew_ms == 0


def test_admin_drop_stall_and_malformed_act_on_websockets(toy_emulator, wait_until):
    emu = toy_emulator
    ws = connect(emu)
    try:
        assert admin(emu, {"malformed": True})[2]["applied"] == {"malformed": 1}
        with pytest.raises(json.JSONDecodeError):
            json.loads(ws.recv())
        assert admin(emu, {"stall_seconds": 30})[2]["applied"] == {"stall_seconds": 1}
        assert request(emu.admin_url + "/state")[2]["faults"]["stalled_seconds"] > 29
        assert admin(emu, {"reset": True})[2]["faults"]["stalled_seconds"] == 0
        assert admin(emu, {"drop_connections": True})[2]["applied"] == {"drop_connections": 1}
        wait_until(lambda: request(emu.admin_url + "/state")[2]["connections"] == 0)
    finally:
        ws.close()


# --- WebSocket faults -------------------------------------------------------------------------------


def test_drop_and_malformed_can_target_private_or_public_connections_only(toy_emulator, wait_until):
    emu = toy_emulator
    public, private = connect(emu), connect(emu)
    try:
        wait_until(lambda: len(emu.hub.connections()) == 2)
        conns = emu.hub.connections()
        conns[-1].account = emu.api_key  # as a dialect marks an authenticated account stream
        assert emu.send_malformed(private=True) == 1
        public.settimeout(0.3)
        with pytest.raises(websocket.WebSocketTimeoutException):
            public.recv()  # nothing for the market data connection
        with pytest.raises(json.JSONDecodeError):
            json.loads(private.recv())
        assert admin(emu, {"drop_connections": "public"})[2]["applied"] == {"drop_connections": 1}
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
            public.recv()
        wait_until(lambda: len(emu.hub.connections()) == 1)
        assert emu.hub.connections()[0].account == emu.api_key  # the private one is still up
        assert emu.drop_connections(private=True) == 1
        wait_until(lambda: not emu.hub.connections())
        status, _, body = admin(emu, {"drop_connections": "everything"})
        assert status == 400 and "drop_connections" in body["error"]
    finally:
        public.close()
        private.close()


def test_an_http_fault_for_one_method_spares_the_others_on_that_path(toy_emulator):
    emu = toy_emulator
    assert admin(emu, {"http_status": 503, "path_prefix": "/api/time", "method": "POST"})[0] == 200
    assert request(emu.urls["rest"] + "/time")[0] == 200  # a GET: not this fault's
    assert emu.faults.snapshot()["http_faults"] == [
        {"status": 503, "count": 1, "retry_after": None, "path_prefix": "/api/time", "method": "POST"}
    ]


def test_drop_cuts_every_websocket_and_new_connections_work(toy_emulator, wait_until):
    emu = toy_emulator
    first, second = connect(emu), connect(emu)
    assert emu.drop_connections() == 2
    for ws in (first, second):
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
            ws.recv()
    wait_until(lambda: not emu.hub.connections())
    again = connect(emu)
    try:
        emu.step(1)
        assert json.loads(again.recv())["stream"] == "btcusdt@kline"
    finally:
        again.close()


def test_stall_sends_nothing_reads_nothing_and_keeps_the_connection_open(toy_emulator):
    emu = toy_emulator
    ws = connect(emu)
    try:
        assert emu.stall_connections(0.6) == 1
        emu.step(1)  # klines emitted during the stall are lost, as on a frozen connection
        ws.send(json.dumps({"echo": "during"}))
        ws.ping(b"are you there")
        ws.settimeout(0.3)
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv()  # no klines, no echo answer, no pong
        assert ws.connected
        # After the stall the server reads again: the buffered request is answered late.
        ws.settimeout(3)
        frame = ws.recv_data_frame(control_frame=True)[1]
        assert frame.opcode == websocket.ABNF.OPCODE_PONG
        assert json.loads(ws.recv()) == {"echo": "during"}
        emu.step(1)
        assert json.loads(ws.recv())["stream"] == "btcusdt@kline"
    finally:
        ws.close()


def test_reset_ends_a_stall_at_once(toy_emulator):
    emu = toy_emulator
    ws = connect(emu)
    try:
        emu.stall_connections(60)
        ws.send(json.dumps({"echo": 1}))
        emu.reset_faults()
        ws.settimeout(3)
        assert json.loads(ws.recv()) == {"echo": 1}
    finally:
        ws.close()


def test_a_connection_opened_during_a_stall_is_stalled_too(toy_emulator):
    emu = toy_emulator
    emu.stall_connections(0.5)
    ws = websocket.create_connection(emu.urls["ws_public"], timeout=0.25)
    try:
        ws.send(json.dumps({"echo": "late"}))
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv()
        ws.settimeout(3)
        assert json.loads(ws.recv()) == {"echo": "late"}
    finally:
        ws.close()


def test_malformed_frame_is_not_json_and_the_connection_survives(toy_emulator):
    emu = toy_emulator
    ws = connect(emu)
    try:
        assert emu.send_malformed() == 1
        frame = ws.recv()
        assert isinstance(frame, str)
        with pytest.raises(json.JSONDecodeError):
            json.loads(frame)
        ws.send(json.dumps({"echo": "still here"}))
        assert json.loads(ws.recv()) == {"echo": "still here"}
    finally:
        ws.close()


def test_publish_reaches_only_subscribers_of_the_topic_and_account(toy_emulator, wait_until):
    emu = toy_emulator
    kline, other = connect(emu), connect(emu, "ethusdt@kline")
    try:
        wait_until(lambda: emu.hub.subscribers("btcusdt@kline") == 1)
        conns = {next(iter(c.topics)): c for c in emu.hub.connections()}
        conns["btcusdt@kline"].account = "alice"
        emu.hub.publish("btcusdt@kline", {"n": 1}, account="bob")  # not alice's: not delivered
        emu.hub.publish("btcusdt@kline", {"n": 2}, account="alice")
        emu.hub.publish("btcusdt@kline", "raw text")
        assert json.loads(kline.recv()) == {"n": 2}
        assert kline.recv() == "raw text"
        other.settimeout(0.2)
        with pytest.raises(websocket.WebSocketTimeoutException):
            other.recv()
    finally:
        kline.close()
        other.close()


def test_a_client_too_slow_to_read_is_disconnected(toy_emulator, wait_until, monkeypatch):
    emu = toy_emulator
    ws = connect(emu)
    try:
        monkeypatch.setattr(emu.hub, "max_queue", 100)
        (conn,) = emu.hub.connections()
        # Publish from this thread faster than the loop can write: the queue overflows.
        for i in range(10_000):
            emu.hub.publish("btcusdt@kline", {"i": i})
            if conn.closed:
                break
        wait_until(lambda: not emu.hub.connections())
    finally:
        ws.close()


def test_ccxt_gets_a_request_timeout_while_the_order_exists():
    """The real thing: unmodified ccxt against the Binance dialect sees a timeout, not an answer."""
    import ccxt

    from realtrade_core import load_exchange
    from realtrade_core.emulator import Emulator

    try:
        load_exchange("binance")
    except Exception as exc:  # the core must stay testable without the Binance plugin
        pytest.skip(f"Binance plugin not installed: {exc}")
    with Emulator("binance", speed=None, history=50) as emu:
        client = emu.ccxt_client(timeout=800)
        client.load_markets()
        price = float(order_body(emu)["price"])
        emu.timeout_next_order()
        with pytest.raises(ccxt.RequestTimeout):
            client.create_order("BTC/USDT", "limit", "buy", 0.001, price)
        (order,) = client.fetch_open_orders("BTC/USDT")
        assert (order["price"], order["amount"], order["status"]) == (price, 0.001, "open")
