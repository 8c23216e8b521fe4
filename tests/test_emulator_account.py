"""Reading and setting an emulated account from Python and from ``realtrade emulator --balance``,
checked through unmodified ccxt over loopback for both exchanges.

What a test reads (``balances()``, ``orders()``, ``fills()``, ``refused_orders()``) must agree
with what ccxt sees on the wire, without going through the wire itself.
"""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from realtrade_core.emulator import Emulator, EmulatorError
from realtrade_core.errors import ConfigurationError

SYMBOL = "BTC/USDT"

pytestmark = pytest.mark.parametrize("exchange_name", ["binance", "bybit"])


@pytest.fixture
def emulator(exchange_name: str):
    emu = Emulator(exchange_name, speed=None, balances={"USDT": 10_000, "BTC": "0.25"}).start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def client(emulator: Emulator) -> Any:
    exchange = emulator.ccxt_client()
    exchange.load_markets()
    return exchange


def below_market(emulator: Emulator) -> float:
    """A price well under the market, on the tick: a limit buy there rests."""
    return float(int(emulator.engine.last_price("BTCUSDT") / 2))


def test_balances_given_in_python_are_what_ccxt_fetches(emulator: Emulator, client: Any) -> None:
    assert {a: b.total for a, b in emulator.balances().items() if b.total} == {
        "USDT": Decimal(10_000),
        "BTC": Decimal("0.25"),
    }
    fetched = client.fetch_balance()
    assert (fetched["USDT"]["free"], fetched["BTC"]["free"]) == (10_000, 0.25)

    emulator.set_balances({"USDT": "1234.5", "ETH": 3})
    fetched = client.fetch_balance()
    assert (fetched["USDT"]["free"], fetched["ETH"]["free"], fetched["BTC"]["free"]) == (1234.5, 3, 0.25)
    assert emulator.balances()["ETH"].free == Decimal(3)


def test_balances_follow_locked_funds(emulator: Emulator, client: Any) -> None:
    price = below_market(emulator)
    client.create_order(SYMBOL, "limit", "buy", 0.01, price)
    usdt = emulator.balances()["USDT"]
    assert usdt.locked == Decimal(str(price)) * Decimal("0.01")
    assert usdt.free + usdt.locked == Decimal(10_000)
    assert client.fetch_balance()["USDT"]["used"] == float(usdt.locked)


def test_orders_lists_every_order_not_only_the_newest_500(emulator: Emulator, client: Any) -> None:
    price = below_market(emulator)
    # Immediate-or-cancel buys under the market expire at once, so the exchanges' limits on
    # open orders (Binance: 200 per symbol) are never reached.
    ioc = {"timeInForce": "IOC"}
    placed = [client.create_order(SYMBOL, "limit", "buy", 0.0002, price, ioc)["id"] for _ in range(503)]
    placed += [client.create_order(SYMBOL, "limit", "buy", 0.0002, price)["id"] for _ in range(2)]
    client.cancel_order(placed[-2], SYMBOL)

    orders = emulator.orders()
    assert [str(o.order_id) for o in orders] == placed  # oldest first, all of them
    assert len(emulator.orders(SYMBOL, status="expired")) == 503
    assert [str(o.order_id) for o in emulator.orders("BTCUSDT", status="canceled")] == [placed[-2]]
    assert [str(o.order_id) for o in emulator.orders(status="open")] == [placed[-1]]
    assert emulator.orders(status="filled") == []
    assert emulator.order(placed[-1]).price == Decimal(str(price))
    with pytest.raises(ValueError, match="unknown order status 'done'"):
        emulator.orders(status="done")
    with pytest.raises(EmulatorError, match="no market 'ETH/USDT'"):
        emulator.orders("ETH/USDT")


def test_fills_are_the_trades_ccxt_fetches(emulator: Emulator, client: Any) -> None:
    bought = client.create_order(SYMBOL, "market", "buy", 0.002, params={"marketUnit": "baseCoin"})
    sold = client.create_order(SYMBOL, "market", "sell", 0.001)

    fills = emulator.fills(SYMBOL)
    assert [(str(f.order_id), f.side.value, f.amount) for f in fills] == [
        (bought["id"], "buy", Decimal("0.002")),
        (sold["id"], "sell", Decimal("0.001")),
    ]
    trades = client.fetch_my_trades(SYMBOL)
    assert sorted((t["order"], t["price"], t["amount"]) for t in trades) == sorted(
        (str(f.order_id), float(f.price), float(f.amount)) for f in fills
    )
    assert [f.order_id for f in emulator.fills(order_id=sold["id"])] == [int(sold["id"])]
    assert emulator.fills(client_order_id=bought["clientOrderId"]) == fills[:1]


def test_refused_orders_carry_the_exchange_code_and_reason(exchange_name: str, emulator: Emulator, client: Any) -> None:
    price = below_market(emulator)
    with pytest.raises(ccxt.InsufficientFunds) as no_funds:
        client.create_order(SYMBOL, "limit", "buy", 1, price, {"clientOrderId": "toomuch"})
    with pytest.raises(ccxt.InvalidOrder) as bad_step:
        # Sent raw, past ccxt's own rounding, so the exchange itself refuses the amount's step.
        field = "quantity" if exchange_name == "binance" else "qty"
        client.create_order(SYMBOL, "limit", "buy", 0.001, price, {field: "0.0010001", "clientOrderId": "badstep"})
    emulator.fail_http(429, path_prefix="/api/v3/order" if exchange_name == "binance" else "/v5/order/create")
    with pytest.raises((ccxt.DDoSProtection, ccxt.RateLimitExceeded)):  # as ccxt names each one's 429
        client.create_order(SYMBOL, "limit", "buy", 0.001, price, {"clientOrderId": "limited"})
    client.create_order(SYMBOL, "limit", "buy", 0.001, price, {"clientOrderId": "accepted"})

    refused = emulator.refused_orders()
    assert [r.client_order_id for r in refused] == ["toomuch", "badstep", "limited"]
    funds, step, limited = refused
    # What ccxt raised is the exchange's answer that was recorded.
    assert funds.code == (-2010 if exchange_name == "binance" else 170131)
    assert funds.reason in str(no_funds.value) and "insufficient balance" in funds.reason.lower()
    assert funds.symbol == "BTCUSDT" and funds.request["side"].upper() == "BUY"
    assert step.code == (-1013 if exchange_name == "binance" else 170137)
    assert step.reason in str(bad_step.value)
    assert (limited.code, limited.http_status) == ((-1003, 429) if exchange_name == "binance" else (10006, 429))
    assert limited.reason.endswith("(injected fault)")
    assert [o.client_order_id for o in emulator.orders()] == ["accepted"]  # refusals never became orders
    assert "signature" not in funds.request


def test_unknown_account_is_a_clear_error(emulator: Emulator) -> None:
    with pytest.raises(EmulatorError, match="no account with API key"):
        emulator.balances(account="not-a-key")
    assert emulator.refused_orders(account="not-a-key") == []
    with pytest.raises(ConfigurationError, match="invalid balance '-1' for USDT"):
        emulator.set_balance("USDT", "-1")


def test_cli_balance_sets_what_ccxt_fetches(exchange_name: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtrade_core.cli", "emulator", "--exchange", exchange_name, "--history", "50",
         "--balance", "USDT=10000", "--balance", "btc=0.25", "--api-key", "clikey", "--secret", "clisecret"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()
    seen: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        admin = None
        while admin is None or not any("Press Ctrl+C" in line for line in seen):
            line = lines.get(timeout=30)
            assert line is not None, f"the emulator exited: {seen} {proc.stderr.read() if proc.stderr else ''}"
            seen.append(line)
            match = re.search(r"admin:\s+(\S+)", line)
            admin = match.group(1) if match else admin
        assert "balances: BTC 0.25, USDT 10000" in "".join(seen).replace("  ", " ").replace("  ", " ")
        with urllib.request.urlopen(admin, timeout=10) as response:
            state = json.loads(response.read())
        client = getattr(ccxt, exchange_name)({"apiKey": "clikey", "secret": "clisecret"})
        client.urls["api"] = state["ccxt_urls"]
        client.load_markets()
        balance = client.fetch_balance()
        assert {a: v for a, v in balance["total"].items() if v} == {"BTC": 0.25, "USDT": 10_000}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=15)
            reader.join(timeout=5)
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
