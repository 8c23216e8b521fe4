"""Unknown outcomes never block: a request whose answer is lost is resolved in the background.

The live broker sends orders one at a time, in the strategy's order. When a create or a cancel
ends without an answer (a timeout, a 5xx), the order is looked up by client order id in the
background while the orders after it go out at once; the order is never placed twice.
"""

from __future__ import annotations

import backtrader as bt
import pytest
from test_broker_live import (
    TICK,
    assert_matches_engine,
    engine_fills,
    last,
    live,
    make_emulator,
    new_store,
    order_path,
)

#: Bybit's order lookups (fetch_order, open and closed orders) have paths of their own
BYBIT_LOOKUPS = ("/v5/order/realtime", "/v5/order/history")


@pytest.fixture
def bybit():
    with make_emulator("bybit") as emu:
        store = new_store("bybit", emu)
        try:
            yield emu, store
        finally:
            store.stop()


def placed(emulator) -> list[str]:
    """Client order ids of the account's orders, in the order the exchange accepted them."""
    return [o.client_order_id for o in emulator.engine.all_orders(emulator.api_key)]


def fail_lookups(emulator) -> None:
    for path in BYBIT_LOOKUPS:
        emulator.fail_http(503, count=100_000, path_prefix=path)


def test_an_order_created_after_a_lost_answer_goes_out_before_that_answer_is_resolved(
    exchange, emulator, store, tmp_path
):
    # A's create is answered 503 before the engine sees it: its outcome is unknown until a lookup
    # made after the 2 s window confirms it absent. B, created just after, does not wait for that
    # (it goes out milliseconds after A's answer: the window leaves it ample room to go first).
    with live(emulator, store, str(tmp_path / "journal.sqlite3"), unknown_outcome_window=2.0) as run:
        s = run.strategy
        emulator.fail_http(503, path_prefix=order_path(emulator))
        a, b = run.do(lambda s: (s.buy(size=0.01), s.buy(size=0.02)))
        a_cid, b_cid = a.info.client_order_id, b.info.client_order_id
        assert placed(emulator) == [b_cid, a_cid]  # B first; A once it was confirmed absent
        run.until(lambda: all("Completed" in s.statuses(o) for o in (a, b)), "both orders completing")
        assert placed(emulator) == [b_cid, a_cid]  # each once
        for order in (a, b):
            assert s.statuses(order) == ["Submitted", "Accepted", "Completed"]
            assert_matches_engine(s.last(order), engine_fills(emulator, order.info.client_order_id))


def test_an_order_accepted_but_unanswered_is_found_later_while_the_next_one_goes_at_once(bybit, tmp_path):
    """A's create is executed and its answer lost; its lookups fail until the exchange recovers.
    B is sent and acknowledged meanwhile; then A is found by client order id and placed once.
    (On Binance lookups and creates share one path, so the emulator cannot fail only the
    lookups; the test above covers both exchanges.)"""
    emulator, store = bybit
    with live(emulator, store, str(tmp_path / "journal.sqlite3")) as run:
        s = run.strategy
        sender = run.broker.live.sender
        emulator.timeout_next_order()
        fail_lookups(emulator)
        a, b = run.do(lambda s: (s.buy(size=0.01), s.buy(size=0.02)))  # returns once B is acknowledged
        a_cid, b_cid = a.info.client_order_id, b.info.client_order_id
        assert a_cid in sender.resolver.pending  # A is still unresolved
        assert placed(emulator) == [a_cid, b_cid]
        emulator.reset_faults()  # the exchange answers lookups again
        run.wait(lambda: not sender.resolver.pending, "A found by client order id")
        run.until(lambda: all("Completed" in s.statuses(o) for o in (a, b)), "both orders completing")
        run.step(2)  # long past the unknown-outcome window
        assert placed(emulator) == [a_cid, b_cid]  # A was never sent again
        for order in (a, b):
            assert s.statuses(order) == ["Submitted", "Accepted", "Completed"]
            assert_matches_engine(s.last(order), engine_fills(emulator, order.info.client_order_id))


def test_a_cancel_whose_answer_is_lost_is_resolved_in_the_background(bybit, tmp_path):
    emulator, store = bybit
    with live(emulator, store, str(tmp_path / "journal.sqlite3")) as run:
        s = run.strategy
        far = float((last(emulator) / 2).quantize(TICK))
        resting = run.do(lambda s: s.buy(size=0.01, exectype=bt.Order.Limit, price=far))
        emulator.fail_http(503, count=100_000, path_prefix="/v5/order/cancel")
        fail_lookups(emulator)
        # The cancel's answers are lost and nobody can say what became of the order; the market
        # buy created right after goes out at once all the same.
        buy = run.do(lambda s: (s.cancel(resting), s.buy(size=0.01))[1])
        assert s.statuses(resting) == ["Submitted", "Accepted"]
        assert emulator.engine.open_orders(emulator.api_key)[0].client_order_id == resting.info.client_order_id
        emulator.reset_faults()
        # The resolver looks again after its backoff (seconds, not candles): the exchange cancels
        # the order, then the next bars bring that to the strategy.
        open_ids = lambda: [o.client_order_id for o in emulator.engine.open_orders(emulator.api_key)]  # noqa: E731
        run.wait(lambda: resting.info.client_order_id not in open_ids(), "the cancel sent again", timeout=30)
        run.until(lambda: "Canceled" in s.statuses(resting), "the cancel resolved")
        run.until(lambda: "Completed" in s.statuses(buy), "the buy completing")
        assert s.statuses(resting) == ["Submitted", "Accepted", "Canceled"]
        orders = {o.client_order_id: o.status.value for o in emulator.engine.all_orders(emulator.api_key)}
        assert orders == {resting.info.client_order_id: "canceled", buy.info.client_order_id: "filled"}
