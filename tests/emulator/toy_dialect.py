"""A minimal emulator dialect for testing the server, hub and faults without a real exchange.

REST: ``GET /api/ping`` -> ``{}``, ``GET /api/time`` -> ``{"serverTime": ms}``, ``POST /api/order``
(JSON ``{"symbol", "side", "type", "amount", "price"}``, header ``X-KEY``) places an order in the
engine, ``GET /api/orders`` lists the account's orders. WebSocket ``/ws``: send
``{"subscribe": ["btcusdt@kline"], "id": 1}``, receive ``{"result": null, "id": 1}`` and then every
kline of the engine as ``{"stream": ..., "data": {"t", "c", "x"}}``; ``{"echo": x}`` is answered
``{"echo": x}`` (proves the server reads the connection).

Loaded by tests/emulator/conftest.py and, as a module file, by the CLI test's fake plugin.
"""

from __future__ import annotations

import json
from decimal import Decimal

from aiohttp import web

from realtrade_core.emulator.dialect import EmulatorDialect
from realtrade_core.emulator.hub import Connection
from realtrade_core.emulator.model import EngineError, KlineEvent, OrderType, Side


class ToyDialect(EmulatorDialect):
    name = "toy"
    order_paths = frozenset({("POST", "/api/order")})

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/ping", self.ping),
            web.get("/api/time", self.time),
            web.post("/api/order", self.order),
            web.get("/api/orders", self.orders),
            web.get("/ws", self.stream),
        ]

    def urls(self, base_http: str, base_ws: str) -> dict[str, str]:
        return {"rest": base_http + "/api", "ws_public": base_ws + "/ws"}

    def ccxt_urls(self, base_http: str) -> dict[str, str]:
        return {"public": base_http + "/api", "private": base_http + "/api"}

    def error_body(self, status: int, retry_after: int | None) -> tuple[int, dict]:
        return status, {"code": -status, "msg": f"injected {status}", "retryAfter": retry_after}

    def on_event(self, event: object) -> None:
        if isinstance(event, KlineEvent):
            candle = event.candle
            stream = f"{event.symbol.lower()}@kline"
            data = {"t": candle.open_time, "c": str(candle.close), "x": event.closed}
            self.hub.publish(stream, {"stream": stream, "data": data})

    async def ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": self.server_time()})

    async def order(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            order = self.engine.place_order(
                request.headers["X-KEY"],
                body["symbol"],
                Side(body["side"]),
                OrderType(body["type"]),
                Decimal(body["amount"]),
                price=Decimal(body["price"]) if body.get("price") else None,
            )
        except EngineError as exc:
            return web.json_response({"code": exc.reason.value, "msg": exc.message}, status=400)
        return web.json_response({"orderId": order.order_id, "status": order.status.value})

    async def orders(self, request: web.Request) -> web.Response:
        orders = self.engine.all_orders(request.headers["X-KEY"])
        return web.json_response([{"orderId": o.order_id, "status": o.status.value} for o in orders])

    async def stream(self, request: web.Request) -> web.WebSocketResponse:
        return await self.hub.serve(request, "public", self.on_text)

    def on_text(self, conn: Connection, text: str) -> None:
        message = json.loads(text)
        if "subscribe" in message:
            for topic in message["subscribe"]:
                conn.subscribe(topic)
            conn.send({"result": None, "id": message.get("id")})
        elif "echo" in message:
            conn.send({"echo": message["echo"]})
