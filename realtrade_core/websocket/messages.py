"""JSON messages in and out: what a plugin sends (:data:`Outgoing`) and the control directives
its parser may return next to data events (:class:`Authenticated`, :class:`Reconnect`,
:class:`Resubscribe`, :class:`Subscribed`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..events import Event

OP_TEXT = 0x1
OP_BINARY = 0x2

Outgoing = str | bytes | Mapping[str, Any] | list[Any]
"""A message to send: ``str`` goes as a text frame, ``bytes`` as a binary frame, a dict or list
is JSON-encoded (compact) and sent as text."""

Callback = Callable[[Any], None]

CONNECTION_EVENTS: frozenset[str] = frozenset({"connected", "subscribed", "disconnected", "max_reconnect", "error"})
"""Events emitted by the connection itself."""


def encode(message: Outgoing) -> tuple[int, bytes | str]:
    """``(opcode, payload)`` of the frame that carries ``message``."""
    if isinstance(message, str):
        return OP_TEXT, message
    if isinstance(message, (bytes, bytearray, memoryview)):
        return OP_BINARY, bytes(message)
    return OP_TEXT, json.dumps(message, separators=(",", ":"))


class Control(Event):
    """Base of the control directives a parser may return next to data events."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Authenticated(Control):
    """Return from ``parse`` for the exchange's auth acknowledgement (or rejection).

    After ``ok=True`` the connection subscribes its streams and becomes ``connected``; after
    ``ok=False`` it emits ``error`` and reconnects with backoff (a failed attempt).
    """

    ok: bool = True
    reason: str = ""
    #: the exchange refused the login's timestamp: the connection has the clock re-measured
    #: (``BaseWebSocket.clock_refused``) before it signs the next attempt
    clock: bool = False


@dataclass(frozen=True, slots=True)
class Reconnect(Control):
    """Return from ``parse`` to replace the connection now, without backoff and without
    counting a failure: Binance ``serverShutdown``, ``eventStreamTerminated`` and the like."""

    reason: str = "server requested"


@dataclass(frozen=True, slots=True)
class Resubscribe(Control):
    """Return from ``parse`` to send the subscribe messages for every active stream again on
    the open connection (e.g. the server says a subscription lapsed)."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class Subscribed(Control):
    """Return from ``parse`` for the exchange's answer to a subscribe request, naming the
    streams it answers (:meth:`~realtrade_core.websocket.ExchangeConnection.answered` finds
    them from the request's id).

    A class with ``subscribe_requires_ack`` becomes ``connected`` only once every stream it
    subscribed on connecting is answered, so what closes after ``connected`` is streamed; a
    stream subscribed later is announced by a ``subscribed`` event (this object) once answered.
    ``ok=False``: the exchange refused them (nothing will arrive for them; not announced).
    """

    streams: tuple[str, ...] = ()
    ok: bool = True
