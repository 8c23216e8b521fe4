"""Formatting a market-data number once, not once per message that carries it.

A dialect writes the same ``Decimal`` objects over and over: the open of a forming candle is in
every update of it, its high and low in most, a trade's price is the candle's close. Formatting
a ``Decimal`` for the wire (quantize, ``as_tuple``, ``format``) costs about ten times a dict
look-up, so the stream builders format through :func:`by_identity`.

The memo is keyed by the object, not its value: ``Decimal("1.0") == Decimal("1.00")``, yet an
exchange's format may tell them apart, and an immutable object always formats the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

V = TypeVar("V")

#: How many objects a memo remembers before it starts over (bounds the memory it holds).
MEMO_SIZE = 4096


def by_identity(fn: Callable[[V], str], size: int = MEMO_SIZE) -> Callable[[V], str]:
    """``fn`` remembering its answer for each of the last ``size`` argument objects it saw.

    ``fn`` must be a pure function of an immutable argument. Thread-safe: the memo is one dict,
    whose operations are atomic; a clear racing a look-up only costs a recomputation.
    """
    memo: dict[int, tuple[V, str]] = {}

    def remembered(value: V) -> str:
        hit = memo.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        text = fn(value)
        if len(memo) >= size:
            memo.clear()
        memo[id(value)] = (value, text)  # holding the object keeps its id from being reused
        return text

    remembered.__doc__ = fn.__doc__
    remembered.__name__ = getattr(fn, "__name__", "remembered")
    return remembered
