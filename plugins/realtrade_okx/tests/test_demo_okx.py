"""``realtrade demo --exchange okx``: the demo trades on OKX's emulator as on the other exchanges'.

The demo loads the exchange by name, backfills from OKX's history candles, goes live over its
business candle stream and paper-trades a moving-average cross until its last live bar.
"""

from __future__ import annotations

import re

from realtrade_core.cli import main


def test_the_demo_trades_on_the_okx_emulator_to_its_end(capsys):
    assert main(["demo", "--exchange", "okx", "--bars", "30", "--speed", "3000", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("realtrade demo: okx emulator, BTC/USDT 1m")
    assert "data    BTC/USDT: LIVE" in out
    done = re.search(r"^done +30 live bars, (\d+) orders filled, (\d+) trades closed", out, re.M)
    assert done, out
    filled = int(done.group(1))
    assert filled >= 1  # seed 1 crosses within 30 live bars: the demo traded
    assert len(re.findall(r"^order   (BUY |SELL) ", out, re.M)) == filled
    assert re.search(rf"^report  orders +{filled} Completed", out, re.M)
