"""Data: a backtrader live feed, history from REST spliced into closed bars from the stream.

Plugin contract (subclass :class:`Data`):

=====================  ========  ===========================================================
member                 required  meaning
=====================  ========  ===========================================================
``exchange``           yes       exchange name, equal to the plugin's entry-point name
``max_page``           no        largest klines page the exchange serves (default 1000)
=====================  ========  ===========================================================
"""

from __future__ import annotations

from typing import ClassVar

import backtrader as bt

from .contract import Contract


class Data(Contract, bt.feed.DataBase):
    """Base class of every exchange data feed."""

    _required = ("exchange",)

    exchange: ClassVar[str | None] = None
    max_page: ClassVar[int] = 1000

    def islive(self) -> bool:
        return True
