"""Broker: paper (the default) or live order handling for backtrader.

Plugin contract (subclass :class:`Broker`):

=====================  ========  ===========================================================
member                 required  meaning
=====================  ========  ===========================================================
``exchange``           yes       exchange name, equal to the plugin's entry-point name
=====================  ========  ===========================================================
"""

from __future__ import annotations

from typing import ClassVar

import backtrader as bt

from .contract import Contract


class Broker(Contract, bt.BrokerBase):
    """Base class of every exchange broker."""

    _required = ("exchange",)

    exchange: ClassVar[str | None] = None
