"""What the fault soak (tests/soak.py) found, each reproduced deterministically.

Real ccxt, sockets and threads against the emulator on a manual clock, for each exchange plugin,
as in test_broker_live.py, whose helpers these tests use.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

import backtrader as bt
import pytest
from test_broker_live import MARKET_ID, SYMBOL, TICK, engine_fills, last, live, make_emulator, new_store

from realtrade_core.emulator.model import MarketSpec
from realtrade_core.events import Fill, Side
from realtrade_core.live.ledger import LedgerMixin
from realtrade_core.live.model import SymbolBook, Tracked

EXCHANGES = ["binance", "bybit"]


@pytest.fixture(params=EXCHANGES)
def exchange(request) -> str:
    return request.param


def test_an_exit_short_by_coin_fees_filled_in_parts_leaves_the_position_exactly_flat(exchange, tmp_path):
    """The buy's fee is taken in BTC, so the exit of 0.01 sells the 0.00999 held and closes 0.01.
    Filled in three parts, each closes its share; the shares must add up to the position exactly,
    or a flat strategy is left with a position of 1e-30 BTC (``if not self.position`` fails)."""
    spec = MarketSpec(
        MARKET_ID, "BTC", "USDT", step_size=Decimal("0.000001"), min_amount=Decimal("0.000001"),
        max_fill_per_step=Decimal("0.004"),
    )  # fmt: skip
    with make_emulator(exchange, markets=[spec]) as emulator:
        store = new_store(exchange, emulator)
        try:
            with live(emulator, store, str(tmp_path / "j.sqlite3")) as run:
                s = run.strategy
                buy = run.do(lambda s: s.buy(size=0.01))
                run.until(lambda: "Completed" in s.statuses(buy), "the buy filling")

                # Priced where the market is when the exit goes (do() steps a candle first), so it
                # rests and fills in parts; a price read before could be crossed on arrival.
                def exit_order(s):
                    return s.sell(size=0.01, exectype=bt.Order.Limit, price=float(last(emulator) + 2 * TICK))

                exit_ = run.do(exit_order)
                run.until(lambda: "Completed" in s.statuses(exit_), "the exit's last part filling", steps=300)
                fills = engine_fills(emulator, exit_.info.client_order_id)
                assert [f.amount for f in fills] == [Decimal("0.004"), Decimal("0.004"), Decimal("0.00199")]
                position, book = run.do(lambda s: (s.position.size, s.broker.live.books[SYMBOL]))
                assert position == 0.0 and book.size == 0 and book.coin_fees == 0
                assert emulator.balances()["BTC"].total == book.held + book.dust == 0
        finally:
            store.stop()


class _Ledger(LedgerMixin):
    """The live session's ledger arithmetic on its own (no exchange needed)."""

    def __init__(self) -> None:
        self.ledger_cash = Decimal(10_000)
        self.currency = "USDT"
        self.other_cash: dict[str, Decimal] = {}
        self.messages: list[str] = []

    def put_store(self, message: str) -> None:
        self.messages.append(message)


def _fill(side: Side, amount: str, fee: str, fee_currency: str, n: int) -> Fill:
    return Fill(exchange="binance", trade_id=str(n), order_id="1", client_order_id="c", symbol=SYMBOL, side=side,
                price=Decimal(60_000), amount=Decimal(amount), fee=Decimal(fee), fee_currency=fee_currency,
                is_maker=True, time=1)  # fmt: skip


def _exit(amount: Decimal, closes: Decimal) -> Tracked:
    return Tracked(None, "c", SYMBOL, "sell", "limit", amount, Decimal(60_000), None, 0, closes=closes)  # type: ignore[arg-type]


def test_the_shares_of_an_exit_short_by_coin_fees_add_up_to_the_position_exactly():
    """Found by the soak: a buy of 0.01 left 0.00999 after its fee in BTC; an exit of it filled
    0.0034 and expired; the exit of the rest (0.00659, closing 0.006596596...) filled 0.004 and
    0.00259. Each share was rounded on its own and they added up to 1e-30 more than the position:
    the strategy was left short 1e-30 BTC, and ``self.position`` was true while flat."""
    ledger, book = _Ledger(), SymbolBook(SYMBOL, "BTC", "USDT")
    ledger._move_position(book, _fill(Side.BUY, "0.01", "0.00001", "BTC", 1))
    first = _exit(Decimal("0.00999"), book.size)
    ledger._move_position(book, _fill(Side.SELL, "0.0034", "0.204", "USDT", 2), first)
    first.executed += Decimal("0.0034")  # then it expires
    assert book.held == Decimal("0.00659")
    rest = _exit(Decimal("0.00659"), book.size)
    for n, amount in enumerate(("0.004", "0.00259"), start=3):
        ledger._move_position(book, _fill(Side.SELL, amount, "0.1", "USDT", n), rest)
        rest.executed += Decimal(amount)
    assert (book.size, book.coin_fees, book.dust) == (0, 0, 0)
    assert book.position.size == 0.0 and not book.position


def test_an_exit_whose_lot_step_leaves_dust_keeps_the_held_coins_right_while_it_fills_in_parts():
    """Found by the soak: a buy of 0.013 left 0.012987 after its fee in BTC; the exit sent 0.01298
    (the lot step leaves 0.000007) and filled 0.004 three times, then 0.00098. Its shares close
    more than the fee coins before the last part: those must still count, or the ledger loses
    them (held + dust was 0.0000055 BTC short of the account)."""
    ledger, book = _Ledger(), SymbolBook(SYMBOL, "BTC", "USDT")
    ledger._move_position(book, _fill(Side.BUY, "0.013", "0.000013", "BTC", 1))
    exit_ = _exit(Decimal("0.01298"), book.size)
    account = Decimal("0.012987")  # what the exchange holds as the exit fills
    for n, amount in enumerate(("0.004", "0.004", "0.004", "0.00098"), start=2):
        ledger._move_position(book, _fill(Side.SELL, amount, "0.12", "USDT", n), exit_)
        exit_.executed += Decimal(amount)
        account -= Decimal(amount)
        assert book.held + book.dust == account
    assert (book.size, book.coin_fees, book.dust) == (0, 0, Decimal("0.000007"))


def _bybit_private() -> Any:
    from realtrade_bybit.websocket import BybitPrivateWebSocket

    from realtrade_core.credentials import Credentials

    return BybitPrivateWebSocket(credentials=Credentials("k", "s"), symbols={MARKET_ID: SYMBOL})


BYBIT_EXECUTION = {
    "topic": "execution", "id": "1", "creationTime": 1,
    "data": [{"category": "spot", "symbol": MARKET_ID, "execFee": "0.00001", "execId": "e1", "execPrice": "30000",
              "execQty": "0.01", "execType": "Trade", "orderId": "1", "orderLinkId": "c", "side": "Buy",
              "execTime": "1", "isMaker": False, "feeCurrency": "BTC"}],
}  # fmt: skip
BYBIT_WALLET = {
    "topic": "wallet", "id": "2", "creationTime": 1,
    "data": [{"accountType": "UNIFIED", "coin": [{"coin": "USDT", "walletBalance": "9000", "locked": "0"}]}],
}  # fmt: skip


@pytest.mark.parametrize(
    ("message", "path"),
    [(BYBIT_EXECUTION, ("data", 0, "execFee")), (BYBIT_WALLET, ("data", 0, "coin", 0, "walletBalance"))],
    ids=["execution without execFee", "wallet without walletBalance"],
)
def test_a_bybit_account_message_missing_a_number_it_always_carries_is_refused_not_read_as_zero(message, path):
    """Found by the soak's corrupted frames: an execution without its fee counted as a fill of no
    fee (the ledger then holds coins the account does not), and a wallet entry without its
    balance as a balance of 0 (the ledger's cash would shrink to nothing). Both are refused now:
    the broker checks the order over REST, and the next wallet message tells the balance."""
    from realtrade_core.validation import MalformedMessage

    ws = _bybit_private()
    assert list(ws.parse(json.dumps(message)))  # the message as Bybit sends it is read
    broken = copy.deepcopy(message)
    node = broken
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    with pytest.raises(MalformedMessage):
        ws.parse(json.dumps(broken))


def test_a_fill_found_over_rest_after_the_stream_lost_it_does_not_shrink_the_ledger_to_stale_balances(
    exchange, tmp_path
):
    """Found by the soak: the private stream lost an exit's fill and the balances after it; the
    fill was found over REST, and the account's cash the broker last heard of (before the exit)
    is not a ceiling: the ledger's cash must not shrink to it, and equals the account after."""
    with make_emulator(exchange) as emulator:
        store = new_store(exchange, emulator)
        try:
            # No periodic audit or balance refresh: only fill_grace finds the lost fill.
            with live(emulator, store, str(tmp_path / "j.sqlite3"), audit_interval=3600, balance_refresh=3600) as run:
                s = run.strategy
                buy = run.do(lambda s: s.buy(size=0.01))
                run.until(lambda: "Completed" in s.statuses(buy), "the buy filling")
                before = emulator.balances()["USDT"].total

                def close_while_the_stream_is_stalled(s):
                    emulator.stall_connections(60)  # every frame is dropped, the connections stay open
                    return s.close()

                exit_ = run.do(close_while_the_stream_is_stalled)
                emulator.reset_faults()  # the stall ends; the exit's fill and balances stay lost
                run.wait(lambda: exit_.status == bt.Order.Completed, "the lost fill found over REST", timeout=20)
                run.step(2)
                cash = run.do(lambda s: s.broker.live.ledger_cash)
                after = emulator.balances()["USDT"].total
                assert after > before and cash == after
                assert not [m for m in s.store_messages if "shrinks" in m]
        finally:
            store.stop()
