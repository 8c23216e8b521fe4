"""Live mode of the broker: real orders through ccxt, status and fills from the private stream.

Threads (DESIGN §4). backtrader is single-threaded, so every change to orders, positions, cash
and the journal's view of them happens in cerebro's thread, in :meth:`LiveSession.next`, which
``broker.next()`` calls on every pass of cerebro's loop. Three other threads only talk to the
exchange and put typed records on one inbox queue:

- the store's private WebSocket thread: :class:`~realtrade_core.events.OrderUpdate`,
  :class:`~realtrade_core.events.Fill`, :class:`~realtrade_core.events.BalanceUpdate` and
  ``("connected" | "disconnected" | "failed", reason)`` tuples;
- the *order sender* (:class:`OrderSender`): creates and cancels orders, one at a time in the
  order the strategy asked, and resolves unknown outcomes (below);
- the *account reader* (:class:`AccountReader`): refreshes balances every ``balance_refresh``
  seconds and, when asked, audits open orders and fetches fills over REST.

Orders you can trust (DESIGN §5, EXCHANGE-NOTES lessons 3-8, 10-12):

- Every order gets a client order id and a journal row *before* it is sent.
- A fill is matched to its order by client order id, so one that arrives before the REST
  acknowledgement is applied, not dropped; fills are applied once, keyed by trade id in the
  journal, whichever of the stream, a REST poll or a restart brings them.
- A timeout, 5xx or network error on create is an *unknown outcome*: the order is looked up by
  client order id, repeatedly, until the exchange can no longer accept the lost request (its
  ``recvWindow`` plus a margin); only an order confirmed absent is sent again, with the same
  client order id. A 429/418 answer means "refused, not executed": the sender waits as long as
  ``Retry-After`` asks, looks the order up anyway, and only then sends it again. Reads retry
  with the same back-off; creates are never retried blindly.
- The strategy trades its own ledger (:mod:`realtrade_core.live.ledger`): positions count
  filled amounts and hold only what it bought; a fee charged in the base asset is commission,
  and an exit short of the position by such fees is sent at what the account holds for it.
- Fills are checked before they count (:meth:`~realtrade_core.live.ledger.LedgerMixin.apply_fill`).
- Status updates the stream announces but whose fills do not arrive within ``fill_grace``
  seconds, and every open order every ``audit_interval`` seconds, are checked over REST: a
  user-data stream that silently stops delivering fills loses nothing. Without a private
  stream (or while it is down) the same audit runs every ``poll_interval`` seconds.

Brackets and OCO follow backtrader's BackBroker: a bracket's parent is sent when its last
child is submitted; the children are Submitted and Accepted at once but held until the parent
has completely filled, then sized by what it filled (a sell child never more than the account
holds, as ``close()``). On spot every resting sell locks what it may sell, so the two exits
rest as the exchange allows (``Broker.bracket_exits``): one exchange OCO list (``"oco"``,
Binance), two conditional orders that hold nothing until they trigger (``"conditional"``,
Bybit; the take-profit as a conditional limit at its price), or the take-profit alone with the
stop armed here (``"held"``): when a bar crosses the stop, the take-profit is cancelled and,
once that is confirmed, the stop goes as a market order (a stop-limit as a limit order). An
OCO list the exchange refuses falls back to ``"held"``. A child that ends cancels its siblings
(an OCO list's other leg is ended by the exchange and reported Canceled, after the fill, as
backtrader reports it); a parent that ends unfilled cancels its children, which are never sent.
Orders grouped by ``oco=`` cancel the others when one executes or ends. Every member of a
bracket or OCO group is linked in the journal with its state (held, armed, triggered, sent,
done), so a restart rebuilds the groups the previous run left unfinished: held children wait
for their parent again (or go out, if it filled while the process was down), an armed stop is
watched again, a stop whose sibling was being cancelled for it is sent, and a group member
that ended while down ends its group as it would have live.

Order validity (backtrader's ``valid=``): the order rests on the exchange as good-till-cancelled.
BackBroker expires an order at the first bar whose datetime is past ``order.valid``, before that
bar can fill it, so the live broker cancels it on the exchange as soon as the bar before has
closed (the data's *next* bar would be past ``valid``); once the cancel is confirmed the order
ends Expired, stamped with that next bar's datetime as in a backtest. A fill that lands before
the cancel still counts (a partly filled order ends Expired with what it filled). An order that
would expire before any bar could fill it is never sent. Held bracket children follow their
bracket: the parent's or a sibling's end cancels them. The strategy cancelling the order on the
last bar it is valid for makes it Canceled, as in a backtest. Validity is journaled: an order
re-attached after a restart keeps it.

A stop whose price the market has already crossed when it reaches the exchange (refused: it
would trigger immediately) is one backtrader fills at the next price, so it is sent again at
once as the order it triggers into: a market order (a stop-limit as a limit order).
"""

from __future__ import annotations

from .io import ExchangeIO, RateGate, rate_limit_errors, scrub
from .ledger import apply_to_position
from .messages import (
    Ack,
    AuditDone,
    AuditRequest,
    BalanceSnapshot,
    CancelFailed,
    CancelRequest,
    CreateRequest,
    OcoRefused,
    OcoRequest,
    StoreMessage,
    SubmitFailed,
)
from .model import (
    BT_TO_TYPE,
    FINAL_TO_BT,
    STOP_TYPES,
    TYPE_TO_BT,
    ZERO,
    Bracket,
    SymbolBook,
    Tracked,
    bar_close_ms,
    dec,
    ms_to_num,
    next_bar_time,
    now_ms,
    triggered_type,
)
from .session import LiveSession
from .workers import AccountReader, OrderSender

__all__ = [
    "BT_TO_TYPE",
    "FINAL_TO_BT",
    "STOP_TYPES",
    "TYPE_TO_BT",
    "ZERO",
    "AccountReader",
    "Ack",
    "AuditDone",
    "AuditRequest",
    "BalanceSnapshot",
    "Bracket",
    "CancelFailed",
    "CancelRequest",
    "CreateRequest",
    "ExchangeIO",
    "LiveSession",
    "OcoRefused",
    "OcoRequest",
    "OrderSender",
    "RateGate",
    "StoreMessage",
    "SubmitFailed",
    "SymbolBook",
    "Tracked",
    "apply_to_position",
    "bar_close_ms",
    "dec",
    "ms_to_num",
    "next_bar_time",
    "now_ms",
    "rate_limit_errors",
    "scrub",
    "triggered_type",
]
