"""The emulated clock: real time, real time times a speed factor, or stepped by hand."""

from __future__ import annotations

import threading
import time


class EmulatedClock:
    """Emulated epoch milliseconds.

    ``speed`` 1.0 runs at real time, 600.0 makes a minute pass every 100 ms; ``speed=None`` is a
    manual clock that only moves through :meth:`advance` / :meth:`set` (tests).
    """

    def __init__(self, start_ms: int, speed: float | None = 1.0) -> None:
        if speed is not None and speed <= 0:
            raise ValueError(f"clock speed must be positive, got {speed!r}")
        self._lock = threading.Lock()
        self._start_ms = start_ms
        self._speed = speed
        self._t0 = time.monotonic()
        self._manual_ms = start_ms

    @property
    def manual(self) -> bool:
        return self._speed is None

    @property
    def speed(self) -> float | None:
        return self._speed

    def now(self) -> int:
        with self._lock:
            if self._speed is None:
                return self._manual_ms
            return self._start_ms + int((time.monotonic() - self._t0) * 1000 * self._speed)

    def advance(self, ms: int) -> int:
        """Move a manual clock forward by ``ms``; returns the new time."""
        with self._lock:
            if self._speed is not None:
                raise RuntimeError("advance() needs a manual clock (speed=None)")
            if ms < 0:
                raise ValueError("the clock cannot go backwards")
            self._manual_ms += ms
            return self._manual_ms

    def set(self, time_ms: int) -> None:
        with self._lock:
            if self._speed is not None:
                raise RuntimeError("set() needs a manual clock (speed=None)")
            if time_ms < self._manual_ms:
                raise ValueError("the clock cannot go backwards")
            self._manual_ms = time_ms
