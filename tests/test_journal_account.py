"""An order journal belongs to one account: another account's broker is refused, before any order
of the journal is touched; its default file name carries no part of the key."""

from __future__ import annotations

import logging
from decimal import Decimal

import backtrader as bt
import pytest

from realtrade_core import ConfigurationError
from realtrade_core.credentials import fingerprint
from realtrade_core.emulator.model import AccountConfig
from realtrade_core.emulator.server import Emulator
from realtrade_core.journal import Journal, JournalOrder, default_journal_path
from realtrade_core.plugins import load_exchange

SYMBOL = "BTC/USDT"
KEY_B, SECRET_B = "account-b-key-" + "7" * 40, "account-b-secret-" + "8" * 40


class ParkAnOrder(bt.Strategy):
    """On the first live bar, a limit buy far below the market; stops once the exchange accepted it."""

    params = (("max_bars", 300),)

    def __init__(self) -> None:
        self.live = False
        self.live_bars = 0
        self.parked = None
        self.accepted = False

    def notify_data(self, data, status, *args, **kwargs) -> None:
        self.live = data._getstatusname(status) == "LIVE"

    def notify_order(self, order) -> None:
        if order.status == order.Accepted:
            self.accepted = True

    def next(self) -> None:
        if not self.live:
            return
        self.live_bars += 1
        if self.parked is None:
            self.parked = self.buy(size=0.01, exectype=bt.Order.Limit, price=round(self.data.close[0] * 0.8, 2))
        if self.accepted or self.live_bars >= self.p.max_bars:
            self.env.runstop()


def cerebro_on(store, journal: str) -> bt.Cerebro:
    cerebro = bt.Cerebro()
    cerebro.adddata(store.getdata(dataname=SYMBOL, timeframe="1m", backfill_bars=5, qcheck=0.05))
    cerebro.setbroker(store.getbroker(mode="live", journal=journal, stream_timeout=10))
    cerebro.addstrategy(ParkAnOrder)
    return cerebro


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_another_accounts_journal_is_refused_and_its_orders_are_untouched(exchange, tmp_path, caplog):
    path = str(tmp_path / "journal.sqlite3")
    spec = load_exchange(exchange)
    with Emulator(exchange, symbols=(SYMBOL,), speed=600, history=50, seed=3, balances={"USDT": 10_000}) as emu:
        emu.engine.add_account(AccountConfig(api_key=KEY_B, secret=SECRET_B, balances={"USDT": Decimal(10_000)}))
        # Account A parks an order; its journal records it.
        store_a = spec.store(venue="emulator", emulator=emu, spec=spec)
        try:
            (strategy,) = cerebro_on(store_a, path).run()
        finally:
            store_a.stop()
        assert strategy.accepted, "account A's order was never accepted"
        with Journal(path) as journal:
            (parked,) = journal.open_orders()
            assert journal.get_meta("account") == fingerprint(emu.api_key)
        # Account B's broker, given A's journal, refuses to start.
        store_b = spec.store(venue="emulator", emulator=emu, api_key=KEY_B, secret=SECRET_B, spec=spec)
        try:
            with caplog.at_level(logging.DEBUG), pytest.raises(ConfigurationError) as info:
                cerebro_on(store_b, path).run()
        finally:
            store_b.stop()
        message = str(info.value)
        assert path in message and "journal=" in message and "API key" in message
        assert KEY_B not in message and emu.api_key not in message
        # A's order is exactly as it was, in the journal and on the exchange.
        with Journal(path) as journal:
            assert journal.get_order(parked.client_order_id) == parked
            assert journal.get_meta("account") == fingerprint(emu.api_key)
        (on_exchange,) = emu.orders(SYMBOL, status="open")
        assert on_exchange.client_order_id == parked.client_order_id
        assert emu.orders(SYMBOL, account=KEY_B) == []


def test_an_older_journal_without_an_account_is_adopted_by_the_first_and_refuses_the_next(tmp_path, caplog):
    path = str(tmp_path / "old.sqlite3")
    with Journal(path) as journal:  # as an older version left it: orders, no account
        journal.set_meta("exchange", "binance")
        journal.record_order(
            JournalOrder("rt-old-1", "17", SYMBOL, "buy", "limit", Decimal("0.01"), Decimal("50000"), None, "new")
        )
    with Journal(path) as journal, caplog.at_level(logging.INFO, logger="realtrade_core.journal"):
        journal.claim_account("aaaa1111bbbb2222")
        journal.claim_account("aaaa1111bbbb2222")  # the same account again: fine, logged once
    adopted = [r.getMessage() for r in caplog.records if "named no account" in r.getMessage()]
    assert len(adopted) == 1 and path in adopted[0] and "aaaa1111bbbb2222" in adopted[0]
    with Journal(path) as journal:
        with pytest.raises(ConfigurationError, match="belongs to another account") as info:
            journal.claim_account("cccc3333dddd4444")
        assert path in str(info.value) and "journal=<path>" in str(info.value)
        assert journal.get_meta("account") == "aaaa1111bbbb2222"
        assert journal.get_order("rt-old-1").status == "new"


def test_a_new_journal_is_bound_without_a_warning(tmp_path, caplog):
    with Journal(tmp_path / "new.sqlite3") as journal, caplog.at_level(logging.INFO, logger="realtrade_core.journal"):
        journal.claim_account("aaaa1111bbbb2222")
        assert journal.get_meta("account") == "aaaa1111bbbb2222"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_default_journal_path_holds_no_part_of_the_key(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    key = "Zq8Rk2Lm9Xw4Vb7Tn1Hs6Pc3Jd5Fg0Ay"
    path = default_journal_path("bybit", "mainnet", key)
    assert path.name == f"bybit-mainnet-{fingerprint(key)}.sqlite3"
    assert not any(key[i : i + 4] in path.as_posix() for i in range(len(key) - 3))


def test_a_journal_named_after_the_key_prefix_is_renamed_keeping_its_orders(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    key = "Zq8Rk2Lm9Xw4Vb7Tn1Hs6Pc3Jd5Fg0Ay"
    legacy = tmp_path / "realtrade" / "binance-testnet-Zq8Rk2Lm.sqlite3"  # an older version's name
    legacy.parent.mkdir()
    with Journal(legacy) as journal:
        journal.record_order(JournalOrder("rt-1", None, SYMBOL, "buy", "market", Decimal("0.01"), None, None, "new"))
    path = default_journal_path("binance", "testnet", key)
    assert not legacy.exists() and "Zq8R" not in path.name
    with Journal(path) as journal:
        assert journal.get_order("rt-1").status == "new"
    assert list((tmp_path / "realtrade").glob("*Zq8R*")) == []


class SeesItsOrders(bt.Strategy):
    """Records the open orders the broker re-attached, on the first live bar, and stops."""

    def __init__(self) -> None:
        self.reattached: list = []
        self.live = False

    def notify_data(self, data, status, *args, **kwargs) -> None:
        self.live = data._getstatusname(status) == "LIVE"

    def next(self) -> None:
        if self.live:
            self.reattached = list(self.broker.get_orders_open())
            self.env.runstop()


@pytest.mark.parametrize("exchange", ["binance"])
def test_a_rotated_key_keeps_its_journal_when_the_user_says_so(exchange, tmp_path):
    """The account's key is rotated: its journal (named after the old key) is refused under the
    new key, and with rebind_journal=True it is bound to the new key and its open order comes
    back as the strategy's."""
    path = str(tmp_path / "journal.sqlite3")
    spec = load_exchange(exchange)
    with Emulator(exchange, symbols=(SYMBOL,), speed=600, history=50, seed=3, balances={"USDT": 10_000}) as emu:
        store = spec.store(venue="emulator", emulator=emu, spec=spec)
        try:
            (strategy,) = cerebro_on(store, path).run()
        finally:
            store.stop()
        assert strategy.accepted
        with Journal(path) as journal:
            (parked,) = journal.open_orders()
        emu.engine.rotate_key(emu.api_key, KEY_B, SECRET_B)
        store = spec.store(venue="emulator", emulator=emu, api_key=KEY_B, secret=SECRET_B, spec=spec)
        try:
            with pytest.raises(ConfigurationError, match="rebind_journal=True"):
                cerebro_on(store, path).run()
        finally:
            store.stop()
        store = spec.store(venue="emulator", emulator=emu, api_key=KEY_B, secret=SECRET_B, spec=spec)
        try:
            cerebro = bt.Cerebro()
            cerebro.adddata(store.getdata(dataname=SYMBOL, timeframe="1m", backfill_bars=5, qcheck=0.05))
            cerebro.setbroker(store.getbroker(mode="live", journal=path, rebind_journal=True))
            cerebro.addstrategy(SeesItsOrders)
            (seen,) = cerebro.run()
        finally:
            store.stop()
        (order,) = seen.reattached
        assert order.info.client_order_id == parked.client_order_id and order.info.reattached
        with Journal(path) as journal:
            assert journal.get_meta("account") == fingerprint(KEY_B)
