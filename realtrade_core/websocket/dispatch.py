"""Typed events to their listeners, bad messages to quarantine, secrets out of the logs.

:class:`Dispatch` is the part of :class:`~realtrade_core.websocket.connection.BaseWebSocket`
(a mixin) that owns the listeners (``on``/``off``), routes each event by its class, checks every
event a parser returns (:meth:`~realtrade_core.events.Event.problem`, built on
:mod:`realtrade_core.validation`) and drops a message whole when one fails, counting it by kind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ..events import DATA_EVENTS, ConnectionEvent, ErrorEvent, Event
from ..validation import MalformedMessage
from .messages import CONNECTION_EVENTS, Callback, Control

logger = logging.getLogger("realtrade_core.websocket")


class LogLimiter:
    """At most one log record per key and interval; counts what it swallowed."""

    __slots__ = ("_next", "_suppressed", "interval")

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._next: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, key: str, level: int, msg: str, *args: Any, exc_info: Any = None) -> None:
        if not logger.isEnabledFor(level):
            return
        now = time.monotonic()
        if now < self._next.get(key, 0.0):
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._next[key] = now + self.interval
        skipped = self._suppressed.pop(key, 0)
        if skipped:
            msg += " (%d similar suppressed)"
            args += (skipped,)
        logger.log(level, msg, *args, exc_info=exc_info)


class Dispatch:
    """Listeners, routing, quarantine and log scrubbing of a connection (a mixin)."""

    extra_events: ClassVar[frozenset[str]] = frozenset()
    name: str
    _lock: threading.RLock

    def _init_dispatch(self) -> None:
        self._listeners: dict[str, tuple[Callback, ...]] = {}
        self._routes: dict[type, tuple[Callback, ...]] = {}
        self._directives: dict[type, Callback] = {}  # control directive class -> its handler
        self._log = LogLimiter()
        self.clock: Callable[[], int] | None = None  # the exchange's market clock, for checks
        self._hidden: tuple[str, ...] = ()  # secrets to remove from anything logged
        self._url_parts: tuple[str, ...] = ()
        self._quarantined: dict[str, int] = {}
        self._quarantine_logged: set[str] = set()
        self._parse_errors = 0
        self._unknown = 0
        self._callback_errors = 0

    # ---------------------------------------------------------------- listeners

    @property
    def quarantined(self) -> dict[str, int]:
        """Bad messages dropped so far, by kind: ``"bar"``, ``"trade"``, ``"book"``, ``"order"``,
        ``"fill"``, ``"balance"`` (a message of that kind that was unreadable or invalid) and
        ``"malformed"`` (not even its kind could be read: truncated JSON, bad UTF-8 ...)."""
        return dict(self._quarantined)

    def hide_in_logs(self, *secrets: str | None) -> None:
        """Never log these values (API key, secret): they are cut out of quarantined messages
        and error texts."""
        hidden = set(self._hidden) | {s for s in secrets if s and len(s) >= 4}
        self._hidden = tuple(sorted(hidden, key=len, reverse=True))

    def on(self, event: str, callback: Callback) -> Callable[[], None]:
        """Call ``callback(event_object)`` for ``event``; returns a function that undoes it."""
        known = DATA_EVENTS | CONNECTION_EVENTS | self.extra_events | {"data"}
        if event not in known:
            raise ValueError(f"unknown event {event!r}; known events: {', '.join(sorted(known))}")
        if not callable(callback):
            raise TypeError("callback must be callable")
        with self._lock:
            listeners = dict(self._listeners)
            listeners[event] = (*listeners.get(event, ()), callback)
            self._listeners = listeners
            self._routes = {}
        return lambda: self.off(event, callback)

    def off(self, event: str, callback: Callback) -> None:
        """Remove one registration of ``callback`` for ``event`` (no error if absent)."""
        with self._lock:
            current = self._listeners.get(event, ())
            if callback not in current:
                return
            index = current.index(callback)
            listeners = dict(self._listeners)
            listeners[event] = current[:index] + current[index + 1 :]
            self._listeners = listeners
            self._routes = {}

    # ---------------------------------------------------------------- routing

    def _route(self, cls: type) -> tuple[Callback, ...]:
        directive = self._directives.get(cls)
        if directive is not None:
            callbacks: tuple[Callback, ...] = (directive,)
        elif (
            isinstance(cls, type)
            and issubclass(cls, Event)
            and cls.EVENT
            and not issubclass(cls, (Control, ConnectionEvent, ErrorEvent))
        ):
            listeners = self._listeners
            callbacks = listeners.get(cls.EVENT, ()) + listeners.get("data", ())
        else:
            callbacks = (self._not_an_event,)
        self._routes[cls] = callbacks
        return callbacks

    def _not_an_event(self, obj: object) -> None:
        self._parse_errors += 1
        self._log.log(
            "not-event",
            logging.WARNING,
            "%s: parse() returned %s, which is not a data event; dropped",
            self.name,
            type(obj).__name__,
        )

    def _emit(self, name: str, event: Event) -> None:
        for callback in self._listeners.get(name, ()):
            try:
                callback(event)
            except Exception as exc:
                self._callback_failed(callback, event, exc)

    def _callback_failed(self, callback: Callback, event: object, exc: Exception) -> None:
        self._callback_errors += 1
        self._log.log(
            "callback",
            logging.ERROR,
            "%s: %s listener %s raised %s: %s",
            self.name,
            type(event).__name__,
            getattr(callback, "__qualname__", type(callback).__name__),  # never a repr: it may hold keys
            type(exc).__name__,
            exc,
            exc_info=exc,
        )

    # ---------------------------------------------------------------- quarantine

    def _admit(self, events: Iterable[Event]) -> tuple[Event, ...]:
        """The message's events when every one is valid; raises MalformedMessage otherwise."""
        if type(events) is not tuple:
            events = tuple(events)
        now: int | None = None
        clock = self.clock
        for event in events:
            check = getattr(event, "problem", None)
            if check is None:
                continue  # not an event: routed to _not_an_event
            if clock is not None and now is None and getattr(event, "uses_clock", False):
                try:
                    now = clock()
                except Exception:  # a clock that cannot answer only skips the time window
                    clock = None
            problem = check(now)
            if problem is not None:
                raise MalformedMessage(getattr(event, "EVENT", "") or "malformed", problem)
        return events

    def _parse_failed(self, exc: Exception, data: bytes) -> None:
        """Quarantine one message that did not parse or did not pass the checks."""
        self._parse_errors += 1
        if isinstance(exc, MalformedMessage):
            kind, reason = exc.kind, exc.reason
        else:
            kind, reason = "malformed", f"{type(exc).__name__}: {exc}"
        self._quarantined[kind] = self._quarantined.get(kind, 0) + 1
        if not logger.isEnabledFor(logging.WARNING):
            return
        text = self._scrub(data[:4096].decode("utf-8", "replace"), 200)
        if kind not in self._quarantine_logged:
            self._quarantine_logged.add(kind)
            logger.warning(
                "%s: quarantined a bad %s message (%s): %s; further ones are counted in .quarantined",
                self.name,
                kind,
                self._scrub(reason),
                text,
            )
        else:
            self._log.log(
                f"quarantine-{kind}", logging.DEBUG, "%s: quarantined a bad %s message (%s): %s",
                self.name, kind, self._scrub(reason), text,
            )  # fmt: skip

    def _unknown_message(self, data: bytes) -> None:
        self._unknown += 1
        self._log.log("unknown", logging.DEBUG, "%s: unknown message: %.200r", self.name, data)

    # ---------------------------------------------------------------- what may be logged

    def _remember_url(self, url: str) -> str:
        """Keep the URL's secret parts for :meth:`_scrub`; returns ``host[:port]`` to show."""
        parts = urlsplit(url)
        host = parts.hostname or "?"
        secret_bits = [url, parts.path, parts.query, parts.fragment]
        self._url_parts = tuple(sorted((p for p in secret_bits if len(p) > 1), key=len, reverse=True))
        return f"{host}:{parts.port}" if parts.port else host

    def _scrub(self, text: str, limit: int = 300) -> str:
        """Remove the URL's path and query (listen keys, tokens) and the hidden secrets from a
        message, then shorten it to ``limit`` characters."""
        for part in self._url_parts + self._hidden:
            text = text.replace(part, "…")
        return text if len(text) <= limit else text[: limit - 1] + "…"
