"""The OKX broker: the core broker with client order ids OKX accepts."""

from __future__ import annotations

import uuid

from realtrade_core.broker import Broker


class OkxBroker(Broker):
    """The core :class:`~realtrade_core.broker.Broker` (paper and live); only its client order
    ids differ: OKX takes at most 32 letters and digits in ``clOrdId`` (no ``-`` or ``_``)."""

    def new_client_order_id(self) -> str:
        return f"rt{uuid.uuid4().hex[:30]}"  # 32 characters
