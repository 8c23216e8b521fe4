"""Bounded waits for tests: poll a condition, or record what a connection emits and wait for it."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["EventRecorder", "wait_until"]


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something true (returned), at most ``timeout``
    seconds; then fail the test naming ``what``. The first looks come quickly (a bar or an
    answer usually takes a millisecond or two), then every 10 ms."""
    deadline = time.monotonic() + timeout
    pause = 0.0005
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what or predicate}")
        time.sleep(pause)
        pause = min(pause * 2, 0.01)


class EventRecorder:
    """Collects what a WebSocket connection emits (any thread), by event name, and waits for
    it with a bound. Called directly, it records ``"data"`` (use it as a store callback)."""

    def __init__(self, ws: Any = None, *names: str) -> None:
        self.entries: list[tuple[str, Any]] = []
        self._cond = threading.Condition()
        if ws is not None:
            for name in names or ("data", "connected", "disconnected", "error", "max_reconnect"):
                ws.on(name, functools.partial(self._add, name))

    def __call__(self, item: Any) -> None:
        self._add("data", item)

    def _add(self, name: str, item: Any) -> None:
        with self._cond:
            self.entries.append((name, item))
            self._cond.notify_all()

    @property
    def items(self) -> list[Any]:
        with self._cond:
            return [item for _, item in self.entries]

    def of(self, cls: type) -> list[Any]:
        return [e for e in self.items if isinstance(e, cls)]

    def of_kind(self, name: str) -> list[Any]:
        with self._cond:
            return [item for kind, item in self.entries if kind == name]

    def count(self, cls: type, **attrs: Any) -> int:
        return sum(all(getattr(e, k) == v for k, v in attrs.items()) for e in self.of(cls))

    def wait(self, predicate: Callable[[EventRecorder], Any], timeout: float = 5.0, what: str = "") -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}; last: {self.entries[-5:]}")
