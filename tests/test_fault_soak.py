"""The fault soak, short: a strategy trades live on the emulator while seeded faults hit it, and
afterwards the ledger, the orders and the balances equal the exchange's (see tests/soak.py).

The long run is one command (README, Development):

    .venv/bin/python tests/soak.py --minutes 10 --seed 7

Here Binance runs on today's dates and Bybit replaying 2021 candles (the emulator's clock far
from the machine's), 20 candles each. ``REALTRADE_SOAK_SEED`` picks another seed; the seed is
printed with the table, and the same seed injects the same faults.
"""

from __future__ import annotations

import os

import pytest
from soak import FAULT_WEIGHTS, Soak, corrupt, plan

SEED = int(os.environ.get("REALTRADE_SOAK_SEED", "11"))
CANDLES = 20


# One run per exchange, one on each clock, to stay near a minute in all; the long command runs
# all four.
@pytest.mark.parametrize(
    ("exchange", "old_dates"), [("binance", False), ("bybit", True)], ids=["binance-today", "bybit-2021"]
)
def test_after_a_seeded_fault_soak_the_ledger_orders_and_balances_equal_the_exchanges(exchange, old_dates, tmp_path):
    report = Soak(exchange, SEED, candles=CANDLES, old_dates=old_dates, workdir=tmp_path).run()
    print(report.table())
    assert sum(report.faults.values()) >= CANDLES // 3, report.table()  # the run was not a quiet one
    assert report.ok, report.table() + "\n  log:\n    " + "\n    ".join(report.log)


def test_the_same_seed_gives_the_same_faults_and_another_seed_others():
    first = plan(7, 200, "binance")
    assert first == plan(7, 200, "binance")
    assert first != plan(8, 200, "binance")
    assert {f.kind for f in first} == set(FAULT_WEIGHTS)  # every kind of fault comes up
    paths = {f.param("path") for f in plan(7, 200, "bybit") if f.param("path")}
    assert all(path.startswith("/v5/") for path, _ in paths)


def test_a_corrupted_frame_differs_from_the_good_one_only_by_a_plainly_wrong_number():
    import random

    good = {"e": "executionReport", "s": "BTCUSDT", "l": "0.004", "L": "60000.1", "n": "0.000004", "x": "TRADE"}
    for seed in range(50):
        bad, what = corrupt(dict(good), random.Random(seed))
        changed = {k for k in good if bad.get(k) != good[k]}
        assert len(changed) == 1 and changed <= {"l", "L", "n"}, what
        (key,) = changed
        assert key not in bad or bad[key] in ("NaN", "-1", {"bad": True})
