"""Clean ends for a Cerebro run that uses realtrade.

backtrader stops the broker, the feeds and the stores only when ``cerebro.run()`` ends normally.
realtrade's brokers and feeds run threads and keep a journal, so the first of them to start in a
run wraps that cerebro's loop (this instance only, never the class):

- an exception out of the strategy stops the broker (orders already asked for go out, the
  journal is flushed and closed), the feeds and the stores, every realtrade thread is joined,
  and the exception goes on to the caller unchanged;
- Ctrl-C (KeyboardInterrupt) ends the run as ``cerebro.runstop()`` would: the strategies stop,
  then the broker, feeds and stores, with one short message instead of a traceback, and
  ``cerebro.run()`` returns the strategies as usual.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger(__name__)


def guard(cerebro: Any) -> None:
    """Wrap ``cerebro``'s event loop once (no-op for None or an already guarded cerebro)."""
    if cerebro is None or getattr(cerebro, "_realtrade_guarded", False):
        return
    loop = getattr(cerebro, "_runnext", None)
    if loop is None:
        return
    cerebro._realtrade_guarded = True

    def guarded(runstrats: Any) -> Any:
        try:
            return loop(runstrats)
        except KeyboardInterrupt:
            print("realtrade: interrupted (Ctrl-C): stopping; orders already sent stay on the exchange and in "
                  "the journal", file=sys.stderr)  # fmt: skip
            log.warning("interrupted (Ctrl-C): the run stops as cerebro.runstop() would")
            return None
        except BaseException:
            stop_all(cerebro)
            raise

    cerebro._runnext = guarded


def stop_all(cerebro: Any) -> None:
    """Stop the broker, the feeds and the stores of ``cerebro``, each once, whatever fails."""
    parts = [getattr(cerebro, "_broker", None), *getattr(cerebro, "datas", []), *getattr(cerebro, "stores", [])]
    for part in parts:
        if part is None:
            continue
        try:
            part.stop()
        except Exception:
            log.exception("could not stop %s after the run failed", type(part).__name__)
