"""How OKX spot wants its orders: client ids as ``clOrdId`` (see :mod:`.broker` for their form);
everything else is ccxt's unified behaviour, which maps OKX's codes (``sCode`` of a refused
order, ``code`` of a request) onto its error classes."""

from __future__ import annotations

from realtrade_core.execution import ExecutionDialect


class OkxExecution(ExecutionDialect):
    # /api/v5/trade/fills-history records name our client order id clOrdId.
    client_order_id_field = "clOrdId"
