"""What the live session needs of the broker that owns it, declared here so live/ never imports
the broker module (which imports live/ to start a session)."""

from __future__ import annotations

from typing import Any, Protocol

from ..execution import ExecutionDialect


class LiveBroker(Protocol):
    """The backtrader broker a :class:`~realtrade_core.live.LiveSession` trades for:
    :class:`realtrade_core.broker.Broker` in live mode."""

    p: Any  # backtrader's params: store, journal, timeouts, cash, ledger, bracket_exits ...
    _ocos: dict[int, int]  # backtrader's OCO bookkeeping: order ref -> its group's leader ref
    _ocol: dict[int, list[Any]]  # leader ref -> the orders of its group

    @property
    def dialect(self) -> ExecutionDialect:
        """The exchange's execution rules."""
        ...

    @property
    def bracket_exits(self) -> str:
        """How live brackets rest their exits here: "held", "oco" or "conditional"."""
        ...

    def notify(self, order: Any) -> None:
        """Queue a copy of ``order`` for the strategy's ``notify_order``."""
        ...

    def getcommissioninfo(self, data: Any) -> Any:
        """backtrader's commission scheme for ``data``."""
        ...

    def new_client_order_id(self) -> str:
        """A fresh client order id."""
        ...
