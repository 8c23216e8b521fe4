"""Bybit streams (market data and user data) on the core BaseWebSocket."""

from __future__ import annotations

from realtrade_core.websocket import BaseWebSocket


class BybitWebSocket(BaseWebSocket):
    exchange = "bybit"

    def url(self, streams):
        raise NotImplementedError

    def parse(self, message):
        raise NotImplementedError

    def subscribe_messages(self, streams):
        raise NotImplementedError

    def unsubscribe_messages(self, streams):
        raise NotImplementedError
