"""Lockstep replay: the next candle opens only once the client has acted on the last closed one.

Real venues are not lockstep: the market moves on while a client thinks, so a slow strategy
reaches the exchange late and, at a replay speed of hundreds of candles a second, its orders
meet a market several candles on. For tests and offline development that breaks the one thing
they want to check, that live trading does what the backtest did. In lockstep
(``Emulator(..., lockstep=True, speed=...)``, ``realtrade emulator --lockstep``) the replay
instead waits for the client at every candle close.

The design, chosen to be deterministic (no timing decides what happens, only the order of
events):

1. The engine replays at ``speed`` and stops at each candle close: once every event of that
   instant is out, i.e. every symbol's candle closing then and the opening price (first path
   step) of each candle opening then, before the next step. The emulated clock stands still
   there (:attr:`.engine.Engine.held_at`); requests meanwhile are served at that instant, so an
   order placed now meets the next candle's open, where backtrader fills a market order, just
   as with a manual clock stepped to that close.
   It also stops after any other path step at which orders traded (filled, triggered or
   expired; ``held_for`` says ``"orders"``, a close says ``"close"``), until the client
   acknowledges that instant the same way: a broker's reaction to a fill (an OCO sibling's
   cancel, a bracket's exits) then reaches the book before the price moves on, as it would in
   real time, where a candle lasts far longer than a round trip.
2. The client *acknowledges* the close: ``emulator.ack(close_ms)`` in process, or
   ``POST /_emulator/ack`` with ``{"time": close_ms}``. Only then does the next candle open;
   the wall time spent waiting does not count against the pace, so candles still take
   ``interval / speed`` each after that. An acknowledgement of an earlier close (a late
   duplicate) releases nothing, so it can never let a later candle through unseen.
3. The client's promise, which makes the guarantee: it acknowledges a close only after it has
   acted on it and every request that action made has been answered. The engine handles a
   request completely before answering it, so by the time the acknowledgement arrives those
   orders are resting in the book, and the next candle trades against them.
4. The account settles before the bar is used. Fills and order statuses reach a client on the
   exchange's private stream and the candle's close on the public one, and nothing orders the
   two; but while the replay waits the account stands still, so the client can ask what there
   is to wait for: ``emulator.order_states(client_order_ids)`` in process, or ``POST
   /_emulator/orders`` with ``{"client_order_ids": [...], "account": api_key}``, answers
   ``{"held_at": ms, "held_for": "close" | "orders", "orders": {client_order_id: {"status",
   "filled"}}}``. A live client applies every fill and final status reported there (from its
   stream, as always) before it hands the bar to its strategy, and again before it
   acknowledges the close (orders the strategy placed at the close, e.g. a market entry, fill
   at that instant, and a bracket's exits must go out before the next candle trades).

realtrade's own broker keeps these promises by itself when its store uses an in-process or
remote emulator in lockstep (:class:`LockstepClient`): on a new closed bar it waits (at most
``stream_timeout``) until its session has applied what the emulator reports for its open
orders; once the strategy has had the bar of that close (cerebro has called ``strategy.next`` on
it and come back to the broker) and, in live mode, every order it sent has been answered and
every fill and status up to then applied, it acknowledges the close; a stop within a candle it
acknowledges once it has applied what traded there and its own reactions are answered. So a
live strategy sees a fill made inside a candle on that candle's bar, as in a backtest, at any
speed. A client that never acknowledges (a plain ccxt script) holds the market at its first
close; ``GET /_emulator/state`` shows where (``lockstep.held_at``). Lockstep serves one client:
with two, the first to acknowledge a close releases it for both.

What lockstep does not do: with several symbols a hole in one symbol's data (no candle closes
there) leaves realtrade's broker waiting for that symbol, which holds the market.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)

__all__ = ["LockstepClient", "LockstepPacer", "unapplied"]

_FINAL = frozenset({"filled", "canceled", "expired", "rejected"})


class LockstepPacer:
    """The server side: advances a lockstep engine at ``speed`` between acknowledgements.

    The emulator's driver calls :meth:`tick` often (every few milliseconds at high speed); each
    tick moves the engine on by the wall time since the last tick times ``speed``, unless the
    replay waits at a close. :meth:`ack` releases it.
    """

    def __init__(self, engine: Engine, speed: float) -> None:
        if not engine.lockstep:
            raise ValueError("LockstepPacer needs an Engine(lockstep=True)")
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed!r}")
        self.engine = engine
        self.speed = float(speed)
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._carry = 0.0  # emulated milliseconds not yet applied (less than one)
        self.acks = 0  # closes acknowledged

    def tick(self) -> None:
        with self._lock:
            now = time.monotonic()
            if self.engine.held_at is not None:
                self._last, self._carry = now, 0.0  # waiting for the client is not market time
                return
            budget = (now - self._last) * 1000.0 * self.speed + self._carry
            self._last = now
            step = int(budget)
            self._carry = budget - step
        if step > 0:
            self.engine.advance_to(self.engine.now() + step)

    def ack(self, time_ms: int | None = None) -> bool:
        """The client has acted on the close at ``time_ms`` (None: whatever close the replay waits
        at); returns whether that released the replay."""
        released = self.engine.release(time_ms)
        if released:
            with self._lock:
                self._last, self._carry = time.monotonic(), 0.0
                self.acks += 1
        return released

    def state(self) -> dict[str, Any]:
        return {"held_at": self.engine.held_at, "acks": self.acks}


class LockstepClient:
    """The client side: acknowledges closes to an emulator in lockstep, in process or over HTTP.

    :meth:`for_store` gives one for a realtrade store whose venue is such an emulator (None
    otherwise); the broker calls :meth:`ack` with the close time of the candles the strategy
    has acted on.
    """

    def __init__(
        self,
        ack: Callable[[int], Any],
        description: str,
        orders: Callable[[list[str]], dict[str, Any]] | None = None,
        streaming: Callable[[str], bool] | None = None,
    ) -> None:
        self._ack = ack
        self._orders = orders
        self._streaming = streaming
        self.description = description
        self.acked: int | None = None  # the last close acknowledged

    def __repr__(self) -> str:
        return f"<LockstepClient {self.description} acked={self.acked}>"

    @classmethod
    def for_store(cls, store: Any) -> LockstepClient | None:
        if getattr(store, "venue", None) != "emulator":
            return None
        emulator = getattr(store, "emulator", None)
        account = getattr(getattr(store, "credentials", None), "api_key", None)
        if emulator is not None:
            if not getattr(emulator, "lockstep", False):
                return None

            def states(client_order_ids: list[str]) -> dict[str, Any]:
                return emulator.order_states(client_order_ids, account=account)

            return cls(emulator.ack, f"in-process {emulator.exchange} emulator", states, emulator.streams_candles)
        url = getattr(store, "emulator_url", None)
        if not url:
            return None
        try:
            state = _request(f"{url}/_emulator/state")
        except (OSError, ValueError) as exc:
            log.warning("could not ask the emulator at %s whether it runs in lockstep (%s); not acknowledging "
                        "candle closes", url, exc)  # fmt: skip
            return None
        if not state.get("lockstep"):
            return None

        def post(time_ms: int) -> Any:
            return _request(f"{url}/_emulator/ack", {"time": int(time_ms)})

        def states(client_order_ids: list[str]) -> dict[str, Any]:
            body: dict[str, Any] = {"client_order_ids": list(client_order_ids)}
            if account:
                body["account"] = account
            return _request(f"{url}/_emulator/orders", body)

        return cls(post, f"emulator at {url}", states)

    def ack(self, time_ms: int) -> None:
        """Acknowledge the close at ``time_ms`` (once; earlier closes are already covered)."""
        if self.acked is not None and time_ms <= self.acked:
            return
        self._ack(int(time_ms))
        self.acked = int(time_ms)

    def streams_candles(self, symbol: str) -> bool:
        """Whether the emulator has a subscriber for ``symbol``'s candles (True where it cannot
        tell: an emulator in another process)."""
        return self._streaming is None or bool(self._streaming(symbol))

    def order_states(
        self, client_order_ids: list[str]
    ) -> tuple[int | None, str | None, dict[str, tuple[str, Decimal]]]:
        """Where the replay waits (None while it runs), why (``"close"`` or ``"orders"``) and,
        for each of these client order ids the account has, its status and filled amount."""
        if self._orders is None:
            return None, None, {}
        answer = self._orders(list(client_order_ids))
        states = {cid: (str(o["status"]), Decimal(str(o["filled"]))) for cid, o in answer.get("orders", {}).items()}
        return answer.get("held_at"), answer.get("held_for"), states


def unapplied(orders: Mapping[str, Any], states: Mapping[str, tuple[str, Decimal]]) -> list[str]:
    """Client order ids whose state on the emulator a live session has not applied yet: a fill
    it has not counted, or a final status (filled, canceled, expired, rejected) it has not
    received. ``orders`` maps client order ids to the session's tracked records."""
    behind = []
    for cid, (status, filled) in states.items():
        tracked = orders.get(cid)
        if tracked is None or tracked.done:
            continue
        if tracked.executed < filled or (status in _FINAL and tracked.final is None):
            behind.append(cid)
    return behind


def _request(url: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())
