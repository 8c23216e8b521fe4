"""The emulator's server: lifecycle, addresses, admin API, market setup and streaming.

Runs the real server (aiohttp on its own thread, real sockets on 127.0.0.1) with the minimal
test dialect of toy_dialect.py, so it tests the core's part independently of any exchange.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from decimal import Decimal

import pytest
import websocket

from realtrade_core.emulator import Emulator, EmulatorError
from realtrade_core.emulator.model import MarketSpec
from realtrade_core.errors import ConfigurationError


def get_json(url: str, timeout: float = 5.0) -> object:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def post_json(url: str, body: dict, timeout: float = 5.0) -> tuple[int, object]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def subscribe(emu: Emulator, topic: str = "btcusdt@kline") -> websocket.WebSocket:
    ws = websocket.create_connection(emu.urls["ws_public"], timeout=5)
    ws.send(json.dumps({"subscribe": [topic], "id": 1}))
    assert json.loads(ws.recv()) == {"result": None, "id": 1}
    return ws


def emulator_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("realtrade-emulator")]


# --- lifecycle ------------------------------------------------------------------------------------


def test_start_serves_the_dialect_and_stop_frees_port_and_thread(toy_dialect):
    emu = Emulator(toy_dialect, speed=None, history=20).start()
    port = emu.port
    assert get_json(emu.urls["rest"] + "/ping") == {}
    assert emulator_threads()

    emu.stop()
    emu.stop()  # idempotent

    assert not emulator_threads()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/ping", timeout=2)
    # The port is free again: a new emulator can listen on exactly that port.
    with Emulator(toy_dialect, port=port, speed=None, history=20) as again:
        assert again.port == port
        assert get_json(again.urls["rest"] + "/ping") == {}


def test_stop_closes_open_websockets(toy_dialect):
    emu = Emulator(toy_dialect, speed=None, history=20).start()
    ws = subscribe(emu)
    emu.stop()
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        # The server's close frame (1001 going away) ends the connection.
        for _ in range(10):
            ws.recv()
    assert ws.status == 1001 or not ws.connected


def test_two_emulators_run_side_by_side_independently(toy_dialect):
    with (
        Emulator(toy_dialect, speed=None, history=20, seed=1) as one,
        Emulator(toy_dialect, speed=None, history=20, seed=2, symbols=["ETH/USDT"]) as two,
    ):
        assert one.port != two.port
        assert one.api_key != two.api_key
        assert get_json(one.admin_url + "/state")["symbols"] == ["BTC/USDT"]
        assert get_json(two.admin_url + "/state")["symbols"] == ["ETH/USDT"]
        one.set_clock_skew(60_000)
        wall = time.time() * 1000
        assert get_json(one.urls["rest"] + "/time")["serverTime"] - wall > 50_000
        assert abs(get_json(two.urls["rest"] + "/time")["serverTime"] - wall) < 10_000


def test_port_in_use_raises_a_clear_error_and_leaves_no_thread(toy_dialect):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        emu = Emulator(toy_dialect, port=port, speed=None, history=20)
        with pytest.raises(EmulatorError, match=f"could not listen on 127.0.0.1:{port}"):
            emu.start()
    assert not emulator_threads()
    emu.stop()  # harmless after a failed start


def test_addresses_need_a_started_emulator(toy_dialect):
    emu = Emulator(toy_dialect, speed=None, history=20)
    with pytest.raises(EmulatorError, match="start"):
        _ = emu.base_http
    emu.stop()
    with pytest.raises(EmulatorError, match="stopped"):
        emu.start()


def test_urls_come_from_the_dialect_and_secret_stays_out_of_repr(toy_emulator):
    emu = toy_emulator
    assert emu.base_http == f"http://127.0.0.1:{emu.port}"
    assert emu.base_ws == f"ws://127.0.0.1:{emu.port}"
    assert emu.urls == {"rest": emu.base_http + "/api", "ws_public": emu.base_ws + "/ws"}
    assert len(emu.api_key) >= 32 and len(emu.secret) >= 32 and emu.api_key != emu.secret
    assert emu.secret not in repr(emu)
    assert emu.engine.secret_for(emu.api_key) == emu.secret


def test_given_keys_become_the_default_account(toy_dialect):
    with Emulator(toy_dialect, speed=None, history=20, api_key="KEY", secret="SECRET") as emu:
        assert (emu.api_key, emu.secret) == ("KEY", "SECRET")
        assert emu.engine.secret_for("KEY") == "SECRET"


def test_ccxt_client_is_unmodified_ccxt_with_only_api_urls_replaced(toy_dialect):
    class BinanceShaped(toy_dialect):
        name = "binance"

    import ccxt

    with Emulator(BinanceShaped, speed=None, history=20) as emu:
        client = emu.ccxt_client(timeout=1234)
        assert type(client) is ccxt.binance
        assert client.urls["api"] == emu.dialect.ccxt_urls(emu.base_http)
        assert client.urls["www"] == ccxt.binance().urls["www"]  # everything else untouched
        assert (client.apiKey, client.secret) == (emu.api_key, emu.secret)
        assert client.enableRateLimit is False
        assert client.timeout == 1234
        assert emu.ccxt_client(enableRateLimit=True).enableRateLimit is True


def test_importing_the_package_does_not_import_aiohttp_or_ccxt():
    code = (
        "import sys, realtrade_core.emulator as e\n"
        "assert 'aiohttp' not in sys.modules and 'ccxt' not in sys.modules\n"
        "e.Emulator\n"
        "assert 'aiohttp' in sys.modules and 'ccxt' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- markets, accounts, settings -----------------------------------------------------------------


def test_synthetic_market_goes_live_now_with_history_behind_it(toy_dialect):
    before = int(time.time() * 1000)
    with Emulator(toy_dialect, history=30, speed=1.0, interval="5m") as emu:
        now = emu.engine.now()
        assert before <= now <= int(time.time() * 1000) + 1000  # speed 1: the wall clock
        candles = emu.engine.candles("BTCUSDT", 300_000, limit=1000)
        # 30 past candles plus the one forming now, whose open is now rounded down to 5 minutes.
        assert len(candles) == 31
        assert candles[-1].open_time == before - before % 300_000
        assert Decimal(30_000) < candles[-1].close < Decimal(120_000)  # BTC looks like BTC


def test_manual_clock_starts_on_the_live_candle_boundary(toy_emulator):
    emu = toy_emulator
    now = emu.engine.now()
    assert now % 60_000 == 0
    assert abs(now - time.time() * 1000) < 120_000
    candles = emu.engine.candles("BTCUSDT", 60_000, limit=1000)
    # 50 candles of history, then the live one that has just opened.
    assert len(candles) == 51
    assert candles[-1].open_time == now and candles[-2].open_time == now - 60_000


def test_default_balances_fund_each_base_and_quote(toy_dialect):
    with Emulator(toy_dialect, speed=None, history=20, symbols=["BTC/USDT", "ETH/BTC"]) as emu:
        balances = {b.asset: b.free for b in emu.engine.balances(emu.api_key)}
        assert balances == {"BTC": Decimal(100_000), "USDT": Decimal(100_000), "ETH": Decimal(10)}


def test_given_balances_replace_the_defaults(toy_dialect):
    with Emulator(toy_dialect, speed=None, history=20, balances={"USDT": 250, "BTC": "0.5"}) as emu:
        balances = {b.asset: b.free for b in emu.engine.balances(emu.api_key) if b.total}
        assert balances == {"USDT": Decimal(250), "BTC": Decimal("0.5")}


def test_settings_are_merged_over_the_defaults(toy_dialect):
    with Emulator(toy_dialect, speed=None, history=20, settings={"ping_interval": 0.5, "extra": 1}) as emu:
        assert emu.dialect.settings == {"ping_interval": 0.5, "pong_timeout": 60.0, "idle_timeout": 600.0, "extra": 1}


def test_explicit_market_spec_overrides_the_derived_one(toy_dialect):
    spec = MarketSpec("BTCUSDT", "BTC", "USDT", tick_size=Decimal("0.1"), min_notional=Decimal(10))
    with Emulator(toy_dialect, speed=None, history=20, markets=[spec]) as emu:
        assert emu.engine.market("BTCUSDT") == spec
        assert emu.symbols == ["BTC/USDT"]


def test_csv_data_is_replayed_from_candle_number_history(toy_dialect, tmp_path):
    path = tmp_path / "BTCUSDT-1h.csv"
    rows = ["timestamp,open,high,low,close,volume"]
    t0 = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000
    for i in range(40):
        rows.append(f"{t0 + i * 3_600_000},{100 + i},{101 + i},{99 + i},{100.5 + i},{10 + i}")
    path.write_text("\n".join(rows) + "\n")
    with Emulator(toy_dialect, data=path, history=30, speed=None) as emu:
        assert emu.engine.now() == t0 + 30 * 3_600_000
        candles = emu.engine.candles("BTCUSDT", 3_600_000, limit=100)
        # The 30 past candles of the file, then candle 30 that has just opened.
        assert [c.open for c in candles] == [Decimal(100 + i) for i in range(31)]
        emu.step(1)
        closed, opened = emu.engine.candles("BTCUSDT", 3_600_000, limit=2)
        assert (closed.open_time, closed.close) == (t0 + 30 * 3_600_000, Decimal("130.5"))
        assert opened.open == Decimal(131)


def test_one_csv_file_for_several_symbols_is_refused(toy_dialect, tmp_path):
    with pytest.raises(ConfigurationError, match="dict"):
        Emulator(toy_dialect, data=tmp_path / "x.csv", symbols=["BTC/USDT", "ETH/USDT"])


def test_missing_or_broken_csv_files_name_the_file(toy_dialect, tmp_path):
    with pytest.raises(ConfigurationError, match=r"not found: .*missing\.csv"):
        Emulator(toy_dialect, data=tmp_path / "missing.csv")
    broken = tmp_path / "broken.csv"
    broken.write_text("time,price\n1,2\n")
    with pytest.raises(ConfigurationError, match=r"broken\.csv, line 1"):
        Emulator(toy_dialect, data={"BTCUSDT": broken})


@pytest.mark.parametrize("symbol", ["BTCUSDT", "BTC-USDT", "BTC/USDT:BTC"])
def test_symbols_must_be_unified_spot_or_linear_perpetual_symbols(toy_dialect, symbol):
    with pytest.raises(ConfigurationError, match="BASE/QUOTE"):
        Emulator(toy_dialect, symbols=[symbol])


def test_invalid_speed_and_interval_are_refused(toy_dialect):
    with pytest.raises(ConfigurationError, match="speed"):
        Emulator(toy_dialect, speed=0)
    with pytest.raises(ConfigurationError, match="interval"):
        Emulator(toy_dialect, interval="1 minute")


def test_an_exchange_name_without_plugin_is_a_clear_error():
    from realtrade_core.errors import ExchangeNotFoundError

    with pytest.raises(ExchangeNotFoundError, match="no-such-exchange"):
        Emulator("no-such-exchange")


# --- admin API and clock --------------------------------------------------------------------------


def test_admin_state_reports_exchange_symbols_clock_connections_and_faults(toy_emulator):
    emu = toy_emulator
    ws = subscribe(emu)
    try:
        state = get_json(emu.admin_url + "/state")
        assert state["exchange"] == "toy"
        assert state["symbols"] == ["BTC/USDT"]
        assert state["time"] == emu.engine.now()
        assert state["speed"] is None and state["manual"] is True
        assert state["connections"] == 1
        assert state["urls"] == emu.urls
        assert state["ccxt_urls"] == {"public": emu.base_http + "/api", "private": emu.base_http + "/api"}
        assert emu.secret not in json.dumps(state)
        assert state["faults"] == {
            "clock_skew_ms": 0,
            "response_delay_ms": 0,
            "http_faults": [],
            "accept_then_timeout": 0,
            "stalled_seconds": 0.0,
        }
    finally:
        ws.close()


def test_manual_step_emits_klines_closing_the_candle(toy_emulator):
    emu = toy_emulator
    ws = subscribe(emu)
    try:
        open_time = emu.engine.now()
        assert emu.step(1) == open_time + 60_000
        messages = []
        while not any(m["data"]["x"] for m in messages):
            messages.append(json.loads(ws.recv()))
        closed = [m["data"] for m in messages if m["data"]["x"]]
        assert closed == [{"t": open_time, "c": closed[0]["c"], "x": True}]
        # Forming updates of that candle came first, on the subscribed stream.
        assert all(m["stream"] == "btcusdt@kline" for m in messages)
        assert all(m["data"]["t"] == open_time for m in messages)
        assert len(messages) >= 2
    finally:
        ws.close()


def test_admin_step_advances_a_manual_clock(toy_emulator):
    emu = toy_emulator
    start = emu.engine.now()
    assert post_json(emu.admin_url + "/step", {"candles": 3}) == (200, {"time": start + 180_000})
    assert post_json(emu.admin_url + "/step", {"ms": 1500}) == (200, {"time": start + 181_500})
    assert emu.advance(500) == start + 182_000


def test_stepping_a_running_clock_is_refused(toy_dialect):
    with Emulator(toy_dialect, speed=1.0, history=20) as emu:
        with pytest.raises(EmulatorError, match="speed=None"):
            emu.step()
        status, body = post_json(emu.admin_url + "/step", {"candles": 1})
        assert status == 409 and "manual" in body["error"]


def test_running_clock_streams_closed_klines_at_speed(toy_dialect, wait_until):
    # speed 12000: a 1m candle every 5 ms of real time.
    with Emulator(toy_dialect, speed=12_000, history=20) as emu:
        ws = subscribe(emu)
        try:
            closed = []
            deadline = time.monotonic() + 5
            while len(closed) < 3 and time.monotonic() < deadline:
                data = json.loads(ws.recv())["data"]
                if data["x"]:
                    closed.append(data["t"])
            assert len(closed) == 3
            assert closed[1] - closed[0] == 60_000 and closed[2] - closed[1] == 60_000
        finally:
            ws.close()


def test_a_client_negotiating_compression_gets_compressed_frames(toy_emulator):
    import asyncio

    import aiohttp

    emu = toy_emulator

    async def client() -> tuple[int, list[dict]]:
        async with aiohttp.ClientSession() as session, session.ws_connect(emu.urls["ws_public"], compress=15) as ws:
            negotiated = ws.compress  # window bits of permessage-deflate, 0 if refused
            await ws.send_json({"subscribe": ["btcusdt@kline"], "id": 1})
            first = await ws.receive_json(timeout=5)
            await asyncio.to_thread(emu.step, 1)
            klines = [await ws.receive_json(timeout=5) for _ in range(3)]
            return negotiated, [first, *klines]

    negotiated, messages = asyncio.run(client())
    assert negotiated == 15
    assert messages[0] == {"result": None, "id": 1}
    assert all(m["stream"] == "btcusdt@kline" for m in messages[1:])
