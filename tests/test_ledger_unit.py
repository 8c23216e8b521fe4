"""The ledger's arithmetic on its own: fees in the coin, in a third currency, adjusted exits, dust."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from realtrade_core.events import Fill, Side
from realtrade_core.live.ledger import LedgerMixin
from realtrade_core.live.model import SymbolBook, Tracked, TrackedOrders

D = Decimal


class Ledger(LedgerMixin):
    """The ledger without a session: books, cash, and a price source for fee currencies."""

    def __init__(self, cash: str = "10000", tickers: dict[str, str] | None = None) -> None:
        self.books = {"BTC/USDT": SymbolBook("BTC/USDT", "BTC", "USDT")}
        self.ledger_cash = D(cash)
        self.other_cash: dict = {}
        self.unvalued: set = set()
        self.currency = "USDT"
        self.asset_prices: dict = {}
        self.messages: list[str] = []
        tickers = tickers or {}
        client = SimpleNamespace(fetch_ticker=lambda symbol: {"last": tickers[symbol]})
        self.store = SimpleNamespace(client=client)
        self.io = SimpleNamespace(read=lambda func, *args: func(*args), scrub=str)

    def put_store(self, message: str) -> None:
        self.messages.append(message)

    def last_price(self, book: SymbolBook) -> float:
        return book.last

    @property
    def book(self) -> SymbolBook:
        return self.books["BTC/USDT"]


def fill(side: Side, amount: str, price: str, fee: str, currency: str, trade: str = "1") -> Fill:
    return Fill("x", trade, "1", "c", "BTC/USDT", side, D(price), D(amount), D(fee), currency, False, 0)


def exit_order(asked: str, sent: str) -> Tracked:
    return Tracked(None, "c", "BTC/USDT", "sell", "market", D(sent), None, None, 0, closes=D(asked))


def test_a_buy_fee_in_the_coin_is_commission_and_leaves_the_position_at_the_filled_amount():
    ledger = Ledger()
    ledger._move_position(ledger.book, fill(Side.BUY, "0.01", "60000", "0.00001", "BTC"))
    assert ledger.book.size == D("0.01") and ledger.book.held == D("0.00999")
    assert ledger.ledger_cash == D("9400")  # the fee took coins, not cash
    assert ledger._commission(fill(Side.BUY, "0.01", "60000", "0.00001", "BTC"), ledger.book) == pytest.approx(0.6)


def test_an_exit_sent_short_by_the_coin_fees_closes_the_whole_position():
    ledger = Ledger()
    ledger._move_position(ledger.book, fill(Side.BUY, "0.01", "60000", "0.00001", "BTC"))
    tracked = exit_order(asked="0.01", sent="0.00999")
    ledger._move_position(ledger.book, fill(Side.SELL, "0.005", "61000", "0.305", "USDT", "2"), tracked)
    assert ledger.book.size == D("0.01") - D("0.005") * D("0.01") / D("0.00999")  # pro rata
    ledger._move_position(ledger.book, fill(Side.SELL, "0.00499", "61000", "0.30439", "USDT", "3"), tracked)
    assert ledger.book.size == 0 and ledger.book.coin_fees == 0 and ledger.book.dust == 0
    assert ledger.ledger_cash == D("9400") + D("0.00999") * 61000 - D("0.305") - D("0.30439")


def test_a_fee_in_a_third_currency_is_counted_at_its_value():
    ledger = Ledger(tickers={"BNB/USDT": "600"})
    bnb = fill(Side.BUY, "0.01", "60000", "0.001", "BNB")
    assert ledger._commission(bnb, ledger.book) == pytest.approx(0.6)  # 0.001 BNB x 600, not 0
    ledger._move_position(ledger.book, bnb)
    assert ledger.book.size == ledger.book.held == D("0.01")
    assert ledger.ledger_cash == D("10000") - D("600") - D("0.6")


def test_a_fee_currency_without_a_price_is_reported():
    ledger = Ledger(tickers={})
    ledger.io = SimpleNamespace(read=lambda func, *args: (_ for _ in ()).throw(KeyError("no market")), scrub=str)
    assert ledger._commission(fill(Side.BUY, "0.01", "60000", "0.001", "XYZ"), ledger.book) == 0
    assert any("XYZ" in m and "counted as 0" in m for m in ledger.messages)


def test_what_the_lot_step_leaves_after_an_exit_is_dust_not_a_position():
    ledger = Ledger()
    ledger._move_position(ledger.book, fill(Side.BUY, "0.0123", "60000", "0.0000123", "BTC"))
    ledger._move_position(ledger.book, fill(Side.SELL, "0.01228", "60000", "0.7368", "USDT", "2"),
                          exit_order(asked="0.0123", sent="0.01228"))  # fmt: skip
    assert ledger.book.size == 0 and ledger.book.position.size == 0
    assert ledger.book.dust == D("0.0000077")
    assert any("dust" in m for m in ledger.messages)


def test_an_exit_sells_the_dust_earlier_exits_left_when_it_makes_a_lot_step():
    # Dust is this strategy's coins too: the account holds it, so the next exit may sweep it.
    ledger = Ledger()
    ledger.books["BTC/USDT"].dust = D("0.0000077")
    ledger._move_position(ledger.book, fill(Side.BUY, "0.01428", "60000", "0.00001428", "BTC"))
    assert ledger.book.held + ledger.book.dust == D("0.01427342")
    # sent: held + dust rounded down to the lot step (0.01427), more than held (0.01426572)
    ledger._move_position(ledger.book, fill(Side.SELL, "0.01427", "61000", "0.87047", "USDT", "2"),
                          exit_order(asked="0.01428", sent="0.01427"))  # fmt: skip
    assert ledger.book.size == 0
    assert ledger.book.dust == D("0.00000342")  # what the account still holds of this strategy's


def test_the_ledgers_value_counts_its_dust_at_the_last_price():
    ledger = Ledger()
    ledger.books["BTC/USDT"].dust = D("0.00001")
    ledger.books["BTC/USDT"].last = 60_000.0
    assert ledger.value() == pytest.approx(10_000.6)


@pytest.mark.parametrize(
    "bad, why",
    [
        (fill(Side.BUY, "NaN", "1", "0", "USDT"), "amount"),
        (fill(Side.BUY, "-0.004", "1", "0", "USDT"), "amount"),
        (fill(Side.BUY, "0.01", "Infinity", "0", "USDT"), "price"),
        (fill(Side.BUY, "0.01", "1", "-1", "USDT"), "fee"),
    ],
)
def test_a_fill_with_numbers_that_cannot_be_is_invalid(bad, why):
    assert why in LedgerMixin.invalid_fill(bad)


def test_a_fill_larger_than_what_the_order_has_left_does_not_fit():
    order = Tracked(None, "c", "BTC/USDT", "buy", "limit", D("0.01"), D("1"), None, 0)
    assert LedgerMixin.unexpected_fill(fill(Side.BUY, "0.01", "1", "0", "USDT"), order) is None
    assert "more than" in LedgerMixin.unexpected_fill(fill(Side.BUY, "0.03", "1", "0", "USDT"), order)
    assert "sell" in LedgerMixin.unexpected_fill(fill(Side.SELL, "0.01", "1", "0", "USDT"), order)


def test_the_open_orders_index_holds_only_orders_not_done():
    """The broker's per-pass loops run over the open orders: finished ones leave the index (a
    long run's thousands of done orders cost nothing per pass), popped ones too."""

    def tracked(cid: str) -> Tracked:
        return Tracked(order=None, client_order_id=cid, symbol="BTC/USDT", side="buy", type="limit",  # type: ignore[arg-type]
                       amount=Decimal("0.01"), price=Decimal("1"), stop_price=None, created_ms=0)  # fmt: skip

    orders = TrackedOrders()
    for i in range(1000):
        orders[f"c{i}"] = tracked(f"c{i}")
    for i in range(998):
        orders[f"c{i}"].done = True
    assert [t.client_order_id for t in orders.open()] == ["c998", "c999"]
    assert len(orders) == 1000 and orders["c5"].done  # finished orders are still found by id
    orders.pop("c998")
    del orders["c999"]
    assert orders.open() == [] and "c999" not in orders


def test_the_trailing_index_holds_only_trailing_orders_not_done():
    """Each broker pass moves the trailing stops: it looks at those only, not at every order
    resting on the book."""
    import backtrader as bt

    class FakeOrder:
        def __init__(self, exectype: int) -> None:
            self.exectype = exectype

    def tracked(cid: str, exectype: int) -> Tracked:
        order: Any = FakeOrder(exectype)
        return Tracked(order=order, client_order_id=cid, symbol="BTC/USDT", side="sell", type="stop",
                       amount=Decimal("0.01"), price=None, stop_price=Decimal("1"), created_ms=0)  # fmt: skip

    orders = TrackedOrders()
    for i in range(200):
        orders[f"l{i}"] = tracked(f"l{i}", bt.Order.Limit)
    orders["t1"] = tracked("t1", bt.Order.StopTrail)
    orders["t2"] = tracked("t2", bt.Order.StopTrailLimit)
    orders["n"] = Tracked(order=None, client_order_id="n", symbol="BTC/USDT", side="buy", type="limit",  # type: ignore[arg-type]
                          amount=Decimal("1"), price=Decimal("1"), stop_price=None, created_ms=0)  # fmt: skip
    assert [t.client_order_id for t in orders.trailing()] == ["t1", "t2"]
    orders["t1"].done = True
    assert [t.client_order_id for t in orders.trailing()] == ["t2"]
    orders.pop("t2")
    assert orders.trailing() == [] and len(orders.open()) == 201
