"""How an exchange wants its orders: the execution dialect a plugin gives its ExchangeSpec.

The live broker sends every order the same way through ccxt; what differs between exchanges is
declared here, once, by the plugin (``ExchangeSpec(execution=MyExecution())``), and read by the
core broker and its live session (``broker.dialect``). The defaults suit a well-behaved ccxt
exchange, so the generic adapter uses this class as it is.

=============================  ==================================================================
member                         meaning (default)
=============================  ==================================================================
``client_order_id_field``      field of the exchange's raw trade record holding our client order
                               id (``"clientOrderId"``)
``fetch_order_params``         extra ccxt params for ``fetch_order`` (``{}``)
``bracket_exits``              how a live bracket's exits rest: ``"held"``, ``"oco"`` or
                               ``"conditional"`` (``"held"``; see below)
``stop_direction_from_market`` the exchange takes a stop's trigger direction from the last
                               price, so a stop already crossed must not be sent as a stop (False)
``create_order_params()``      extra ccxt params to create an order (``{}``)
``cancel_param_sets()``        ccxt param sets tried in turn to cancel (``[{}]``)
``classify()``                 what a ccxt error means for an order (:class:`ErrorKind`)
``retry_after()``              seconds a rate-limited or banned client must wait (``Retry-After``)
``create_oco_orders()``        send an exchange OCO order list (needed for ``"oco"``; none)
``one_way_help``               how to switch an account in hedge position mode to one-way mode,
                               for the error that refuses it (perpetuals; generic words)
``setting_unchanged()``        a refused ``set_leverage`` / ``set_margin_mode`` that only says the
                               setting is so already (ccxt's ``MarginModeAlreadySet``)
``contract_open_order_params`` perpetuals: the ccxt param sets whose ``fetch_open_orders`` together
                               list every open order, conditional ones included (``({},)``)
``contract_order_params()``    perpetuals: extra ccxt params to create an order (``{}``)
``contract_cancel_param_sets()`` perpetuals: as ``cancel_param_sets`` (the same by default)
=============================  ==================================================================

A plugin subclasses :class:`ExecutionDialect` and overrides what its exchange does otherwise; the
registry checks the instance (:func:`dialect_problems`) when the plugin loads. Importing this
module brings neither ccxt nor backtrader: ccxt is imported by the methods that read its errors.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from .retry import retry_after_header

#: Where a live bracket's two exits (take-profit and stop) rest once the parent has filled.
#: A spot account locks the coins behind every resting sell, so both cannot simply rest:
#:
#: - ``"held"``: the take-profit rests on the exchange and the broker holds the stop; when a
#:   closed bar has crossed it, the take-profit is cancelled and the stop sent as a market
#:   (stop-limit: limit) order. Works everywhere; a stop exit comes a bar late and only while
#:   the process runs.
#: - ``"oco"``: both as one exchange OCO list (:meth:`ExecutionDialect.create_oco_orders`); the
#:   exchange executes whichever the market reaches and expires the other, process or no process.
#: - ``"conditional"``: both as conditional orders that hold no funds until they trigger (the
#:   take-profit as a conditional limit at its price); the broker cancels the other when one
#:   fills, and if both ever trigger the second finds nothing to sell.
#:
#: ``store.getbroker(mode="live", bracket_exits=...)`` overrides the exchange's choice for one broker.
BRACKET_EXITS = ("held", "oco", "conditional")


class ErrorKind(enum.Enum):
    """What a ccxt error on an order request means for the order."""

    RATE_LIMITED = "rate limited"  # 429 / 418 ban: refused, not executed; wait (retry_after) and send again
    UNKNOWN_OUTCOME = "unknown outcome"  # timeout, 5xx, lost answer: the order may exist; look it up
    INSUFFICIENT_FUNDS = "insufficient funds"  # refused: the account cannot cover it (Margin)
    STOP_CROSSED = "stop already crossed"  # refused: the market has passed the stop price already
    REFUSED = "refused"  # any other refusal (a bad price or amount, an unknown order ...)


class ExecutionDialect:
    """The default execution rules; subclass to declare an exchange's own (see the module doc)."""

    client_order_id_field: ClassVar[str] = "clientOrderId"
    fetch_order_params: ClassVar[Mapping[str, Any]] = {}
    bracket_exits: ClassVar[str] = "held"
    stop_direction_from_market: ClassVar[bool] = False
    contract_open_order_params: ClassVar[tuple[Mapping[str, Any], ...]] = ({},)
    one_way_help: ClassVar[str] = (
        "switch the account's position mode to one-way in the exchange's settings (with no position or order open)"
    )

    def __repr__(self) -> str:
        return f"{type(self).__module__}.{type(self).__qualname__}()"

    def create_order_params(self, order_type: str, side: str) -> dict[str, Any]:
        """Extra ccxt params to create an order of ``order_type`` ("market", "limit", "stop",
        "stop_limit"); the client order id and the trigger price are already set."""
        return {}

    def cancel_param_sets(self, order_type: str) -> list[dict[str, Any]]:
        """ccxt param sets to try in turn when cancelling; the next is tried on OrderNotFound."""
        return [{}]

    def classify(self, exc: BaseException) -> ErrorKind:
        """What the ccxt error ``exc``, raised by an order request, means. The default reads
        ccxt's exception classes; a plugin adds the codes ccxt maps too coarsely."""
        import ccxt

        if isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)):  # not one another in ccxt 4
            return ErrorKind.RATE_LIMITED
        if isinstance(exc, (ccxt.OperationFailed, ccxt.BadResponse)):
            return ErrorKind.UNKNOWN_OUTCOME
        if isinstance(exc, ccxt.InsufficientFunds):
            return ErrorKind.INSUFFICIENT_FUNDS
        if isinstance(exc, ccxt.OrderImmediatelyFillable):  # a stop that would trigger at once
            return ErrorKind.STOP_CROSSED
        return ErrorKind.REFUSED

    def retry_after(self, error: BaseException, headers: Mapping[str, str], exchange_ms: float) -> float | None:
        """Seconds the exchange asked us to wait after the rate-limit or ban ``error`` (None: it
        did not say). ``headers`` are the last response's; ``exchange_ms`` is the exchange's clock
        now, for deadlines the exchange gives on its own clock. The default reads ``Retry-After``."""
        return retry_after_header(headers)

    def create_oco_orders(
        self,
        client: Any,
        symbol: str,
        side: str,
        amount: Any,
        limit_price: Any,
        stop_price: Any,
        stop_limit_price: Any,
        limit_client_order_id: str,
        stop_client_order_id: str,
    ) -> list[dict[str, Any]]:
        """Send an OCO order list (a resting limit order and a stop, one amount) through the ccxt
        ``client``; returns both legs as ccxt order dicts, limit first. Raises ccxt's errors."""
        raise NotImplementedError(f"{type(self).__qualname__} has no OCO order lists")

    def contract_order_params(self, order_type: str, side: str, fires_on_rise: bool) -> dict[str, Any]:
        """Extra ccxt params to create a perpetual contract's order of ``order_type``; a stop
        (``"stop"``, ``"stop_limit"``) fires when the price rises to its trigger if
        ``fires_on_rise``, else when it falls to it."""
        return {}

    def contract_cancel_param_sets(self, order_type: str) -> list[dict[str, Any]]:
        """:meth:`cancel_param_sets` for a perpetual contract's order."""
        return self.cancel_param_sets(order_type)

    def setting_unchanged(self, exc: BaseException) -> bool:
        """Whether ``exc``, raised by ccxt's ``set_leverage`` or ``set_margin_mode``, only says the
        contract has that setting already (nothing to change: not an error)."""
        import ccxt

        return isinstance(exc, ccxt.MarginModeAlreadySet)

    @property
    def has_oco_orders(self) -> bool:
        """Whether this exchange sends OCO order lists (its dialect implements them)."""
        return type(self).create_oco_orders is not ExecutionDialect.create_oco_orders


# member -> (what it must be, as the error says it, and the check)
_VALUES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "client_order_id_field": ("a non-empty str", lambda v: isinstance(v, str) and bool(v)),
    "fetch_order_params": ("a mapping of ccxt params", lambda v: isinstance(v, Mapping)),
    "bracket_exits": (f"one of {', '.join(map(repr, BRACKET_EXITS))}", lambda v: v in BRACKET_EXITS),
    "stop_direction_from_market": ("a bool", lambda v: isinstance(v, bool)),
    "one_way_help": ("a non-empty str", lambda v: isinstance(v, str) and bool(v)),
    "contract_open_order_params": (
        "a non-empty tuple of ccxt param mappings",
        lambda v: isinstance(v, tuple) and bool(v) and all(isinstance(p, Mapping) for p in v),
    ),
}
_METHODS = ("create_order_params", "cancel_param_sets", "classify", "retry_after", "create_oco_orders",
            "setting_unchanged", "contract_order_params", "contract_cancel_param_sets")  # fmt: skip


def dialect_problems(dialect: object) -> list[str]:
    """What is wrong with ``dialect`` as an exchange's execution dialect, one line each (empty
    when it is sound): not an ExecutionDialect instance, a value of the wrong type, a method
    replaced by something not callable, or OCO exits without OCO order lists."""
    if isinstance(dialect, type) and issubclass(dialect, ExecutionDialect):
        return [f"{dialect.__qualname__} is a class; give an instance: execution={dialect.__qualname__}()"]
    if not isinstance(dialect, ExecutionDialect):
        return [f"{dialect!r} is not a realtrade_core.execution.ExecutionDialect"]
    problems = []
    for name, (wanted, ok) in _VALUES.items():
        value = getattr(dialect, name, None)
        if not ok(value):
            problems.append(f"{name} must be {wanted}, not {value!r}")
    for name in _METHODS:
        if not callable(getattr(dialect, name, None)):
            problems.append(f"{name} must be a method")
    if dialect.bracket_exits == "oco" and not dialect.has_oco_orders:
        problems.append("bracket_exits='oco' needs create_oco_orders() (the exchange's OCO order lists)")
    return problems
