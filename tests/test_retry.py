"""REST calls survive what venues do every day: 429, 418 bans, 5xx, timeouts.

The feed's catch-up meets injected 429/418/503 answers and keeps going, delivering every candle
once and reporting DELAYED while it waits and LIVE when it resumes; only a permanent error (a
refused key) ends a session, with a message saying what to do. Unit tests cover the policy
itself and each exchange's reading of how long to wait.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import backtrader as bt
import ccxt
import pytest
from livetest import MINUTE, NO_THROTTLE, Driver, Recorder, candles, last_closed_open, streaming

from realtrade_core import retry
from realtrade_core.emulator.server import Emulator
from realtrade_core.errors import RealtradeError
from realtrade_core.plugins import load_exchange
from realtrade_core.store import get_store

EXCHANGES = ["binance", "bybit"]
KLINES = {"binance": "/api/v3/klines", "bybit": "/v5/market/kline"}


@pytest.fixture(params=EXCHANGES)
def exchange(request) -> str:
    return request.param


# --- the feed -------------------------------------------------------------------------------------


def test_a_catch_up_that_meets_429_418_and_503_waits_and_delivers_every_candle_once(exchange):
    with Emulator(exchange, symbols=("BTC/USDT",), speed=None, history=100, seed=3) as emulator:
        store = get_store(exchange, "emulator", emulator=emulator, ccxt_config=NO_THROTTLE)
        cerebro = bt.Cerebro()
        cerebro.adddata(store.getdata(dataname="BTC/USDT", timeframe="1m", backfill_bars=5, qcheck=0.05))
        cerebro.addstrategy(Recorder)
        faults = [(429, 1, 1), (418, 1, 1), (503, 2, None)]  # (status, count, Retry-After)
        seen: dict[str, Any] = {}

        def script(d: Driver) -> None:
            strategy = d.wait_strategy(lambda s: s.live_seen.is_set(), "LIVE")
            d.wait(streaming(emulator, "BTC/USDT", feeds=d.cerebro.datas), "the candle stream")
            rows = strategy.rows["BTC/USDT"]
            for status, count, retry_after in faults:
                # Candles close while the stream drops every frame: the next stream bar opens a
                # gap, which the feed fills over REST, where the fault waits for it.
                emulator.stall_connections(60)
                emulator.step(2)
                emulator.reset_faults()  # the stall ends; the two candles' frames stay lost
                emulator.fail_http(status, count=count, retry_after=retry_after, path_prefix=KLINES[exchange])
                emulator.step(1)
                target = last_closed_open(emulator)
                d.wait(lambda t=target: rows and rows[-1][0] == t, f"bar {target} after HTTP {status}")
                seen[status] = list(strategy.states["BTC/USDT"])
            seen["end"] = last_closed_open(emulator)

        driver = Driver(cerebro, script, deadline=60)
        driver.start()
        try:
            (strategy,) = cerebro.run()
        finally:
            driver.check()
            store.stop()
    got = strategy.rows["BTC/USDT"]
    assert got == candles(emulator, "BTC/USDT", got[0][0], seen["end"])  # every candle, once, in order
    assert len(got) == 5 + 3 * 3
    states = strategy.states["BTC/USDT"]
    assert states[:3] == ["CONNECTED", "DELAYED", "LIVE"]
    assert states[3:] == ["DELAYED", "LIVE"] * 3  # each wait reported, each resume too
    assert "DISCONNECTED" not in states and "CONNBROKEN" not in states
    assert sum("delayed" in m for m in strategy.store_messages) == 3


# --- a permanent error ends the session -----------------------------------------------------------


def test_a_refused_key_ends_the_live_session_saying_what_to_do(exchange):
    with Emulator(exchange, symbols=("BTC/USDT",), speed=None, history=50) as emulator:
        spec = load_exchange(exchange)
        store = spec.store(venue="emulator", emulator=emulator, spec=spec, api_key="not-a-key", secret="not-a-secret")
        try:
            cerebro = bt.Cerebro()
            cerebro.adddata(store.getdata(dataname="BTC/USDT", timeframe="1m", backfill_bars=2, qcheck=0.05))
            cerebro.setbroker(store.getbroker(mode="live", journal=":memory:", stream_timeout=0.5))
            cerebro.addstrategy(Recorder)
            with pytest.raises(RealtradeError, match=r"API key was refused.*check the key") as info:
                cerebro.run()
        finally:
            store.stop()
    assert "not-a-secret" not in str(info.value)
    assert isinstance(info.value.__cause__, ccxt.AuthenticationError)


# --- the policy --------------------------------------------------------------------------------------


class FakeStore:
    """Just what the policy reads from a store."""

    exchange, venue, emulator_url, emulator, credentials = "fake", "mainnet", None, None, None

    def __init__(self, asked: float | None = None) -> None:
        self.asked = asked
        self._client = None

    def retry_after(self, error: BaseException, headers: dict) -> float | None:
        return self.asked


def failing(*errors: BaseException, result: Any = "ok") -> Any:
    calls: list[int] = []

    def func() -> Any:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    func.calls = calls  # type: ignore[attr-defined]
    return func


def test_transient_errors_are_retried_and_permanent_ones_raise_at_once(monkeypatch):
    monkeypatch.setattr(retry, "BACKOFF_INITIAL", 0.01)
    monkeypatch.setattr(retry, "BACKOFF_JITTER", 0.01)
    monkeypatch.setattr(retry, "_backoff", None)
    store = FakeStore()
    func = failing(ccxt.RequestTimeout("slow"), ccxt.ExchangeNotAvailable("503"), ccxt.NetworkError("reset"))
    assert retry.call(store, func) == "ok" and len(func.calls) == 4
    for permanent in (ccxt.AuthenticationError("bad key"), ccxt.PermissionDenied("no"), ccxt.BadSymbol("NOPE")):
        func = failing(permanent)
        with pytest.raises(type(permanent)):
            retry.call(store, func)
        assert len(func.calls) == 1


def test_a_rate_limit_waits_as_asked_and_holds_every_call_to_the_venue():
    store = FakeStore(asked=0.3)
    func = failing(ccxt.RateLimitExceeded("429"))
    started = time.monotonic()
    assert retry.call(store, func) == "ok"
    assert time.monotonic() - started >= 0.3
    gate = retry.gate_for(store)
    assert gate is retry.gate_for(FakeStore())  # another store of the same venue waits too
    retry.call(store, failing(ccxt.DDoSProtection("418")))
    assert gate.remaining() > 0 or time.monotonic() - started >= 0.6


def test_patience_and_stopping_end_the_retries_with_the_last_error(monkeypatch):
    monkeypatch.setattr(retry, "BACKOFF_INITIAL", 0.01)
    monkeypatch.setattr(retry, "BACKOFF_JITTER", 0.01)
    monkeypatch.setattr(retry, "_backoff", None)
    store = FakeStore()
    always = failing(*[ccxt.RequestTimeout(f"timeout {i}") for i in range(10_000)])
    with retry.context(patience=0.2), pytest.raises(ccxt.RequestTimeout):
        retry.call(store, always)
    assert len(always.calls) > 1
    stopping = threading.Event()
    waits: list[float] = []

    def waiting(error: BaseException, seconds: float) -> None:
        waits.append(seconds)
        stopping.set()  # the feed stops while waiting

    slow = FakeStore(asked=3600.0)
    with retry.context(stopping=stopping, waiting=waiting, patience=None), pytest.raises(ccxt.RateLimitExceeded):
        retry.call(slow, failing(ccxt.RateLimitExceeded("429")))
    assert waits and waits[0] >= 3600.0


def test_binance_reads_the_ban_deadline_and_bybit_the_limit_reset():
    binance = load_exchange("binance").store(venue="mainnet")
    now = int(time.time() * 1000)
    banned = ccxt.DDoSProtection(f'binance 418 {{"code":-1003,"msg":"Way too much request weight used; IP banned '
                                 f'until {now + 90_000}. Please use WebSocket Streams"}}')  # fmt: skip
    assert binance.retry_after(banned, {}) == pytest.approx(90, abs=2)
    assert binance.retry_after(banned, {"Retry-After": "120"}) == 120  # the later of the two
    assert binance.retry_after(ccxt.RateLimitExceeded("429"), {"retry-after": "7"}) == 7
    assert binance.retry_after(ccxt.RateLimitExceeded("429"), {}) is None

    bybit = load_exchange("bybit").store(venue="mainnet")
    used_up = {"X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": str(now + 800)}
    assert 0 < bybit.retry_after(ccxt.RateLimitExceeded("10006"), used_up) <= 0.85
    left = {"X-Bapi-Limit-Status": "5", "X-Bapi-Limit-Reset-Timestamp": str(now + 800)}
    assert bybit.retry_after(ccxt.RateLimitExceeded("10006"), left) is None  # another answer's headers
    past = {"X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": str(now - 5_000)}
    assert bybit.retry_after(ccxt.RateLimitExceeded("10006"), past) is None


def test_an_exchange_ban_is_waited_out_with_the_exchange_clock(exchange):
    """A real 418 from the emulator: the read waits until the ban ends, then succeeds."""
    with Emulator(exchange, symbols=("BTC/USDT",), speed=None, history=50) as emulator:
        store = get_store(exchange, "emulator", emulator=emulator, ccxt_config=NO_THROTTLE)
        try:
            store.start()
            emulator.fail_http(418, retry_after=1, path_prefix=KLINES[exchange])
            started = time.monotonic()
            rows = store.fetch_closed_candles("BTC/USDT", store.timeframe("1m"), last_closed_open(emulator) - MINUTE)
            assert time.monotonic() - started >= 1.0
            assert [r[0] for r in rows] == [last_closed_open(emulator) - MINUTE, last_closed_open(emulator)]
        finally:
            store.stop()
