"""Fault injection for the emulator, driven from tests (in process) or the admin endpoint.

All fields are read by the server on every request / frame, so a change takes effect at once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class HttpFault:
    """Answer the next ``count`` matching REST requests with ``status`` instead of serving them."""

    status: int  # 429, 418, 500, 502, 503, 504
    count: int = 1
    retry_after: int | None = None  # seconds, sent as Retry-After
    path_prefix: str = ""  # only requests whose path starts with this
    method: str = ""  # only requests with this HTTP method ("" any): Binance creates, looks up
    # and cancels orders on one path, told apart by the method

    def __post_init__(self) -> None:
        self.method = self.method.upper()
        if not 400 <= self.status <= 599:
            raise ValueError(f"an injected HTTP fault needs a 4xx or 5xx status, got {self.status!r}")
        if self.count < 1:
            raise ValueError(f"an injected HTTP fault needs count >= 1, got {self.count!r}")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError(f"retry_after must be >= 0 seconds, got {self.retry_after!r}")
        if self.method not in ("", "GET", "POST", "PUT", "DELETE"):
            raise ValueError(
                f"an injected HTTP fault's method is GET, POST, PUT, DELETE or '' (any), got {self.method!r}"
            )


@dataclass
class Faults:
    """The fault switches of one emulator. Thread-safe through :attr:`lock`."""

    clock_skew_ms: int = 0  # added to the server time the dialect reports and checks against
    response_delay_ms: int = 0  # every REST answer is delayed this much
    http_faults: list[HttpFault] = field(default_factory=list)
    accept_then_timeout: int = 0  # next N order placements are executed, then never answered
    stall_until: float = 0.0  # time.monotonic() until which WebSocket connections are stalled
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take_http_fault(self, path: str, method: str = "") -> HttpFault | None:
        """Consume and return the first HTTP fault matching ``path`` (and ``method``), if any.

        The returned record has ``count`` 1: it describes the one answer to inject now.
        """
        if not self.http_faults:  # every REST request asks: skip the lock when there is nothing
            return None
        with self.lock:
            for index, fault in enumerate(self.http_faults):
                if path.startswith(fault.path_prefix) and fault.method in ("", method.upper()):
                    fault.count -= 1
                    if fault.count <= 0:
                        del self.http_faults[index]
                    return HttpFault(fault.status, 1, fault.retry_after, fault.path_prefix, fault.method)
        return None

    def take_accept_then_timeout(self) -> bool:
        """Consume one pending "accept the order, then never answer" fault; True if there was one."""
        if not self.accept_then_timeout:
            return False
        with self.lock:
            if self.accept_then_timeout > 0:
                self.accept_then_timeout -= 1
                return True
        return False

    @property
    def stalled(self) -> bool:
        # Read without the lock: one float read is atomic, and this sits on the publish hot path.
        return self.stall_until > time.monotonic()

    # --- setters used by the Emulator and the admin endpoint ---------------------------------

    def add_http_fault(
        self, status: int, count: int = 1, retry_after: int | None = None, path_prefix: str = "", method: str = ""
    ) -> HttpFault:
        """Queue a fault; the record returned counts down as matching requests consume it."""
        fault = HttpFault(int(status), int(count), None if retry_after is None else int(retry_after), path_prefix,
                          method)  # fmt: skip
        with self.lock:
            self.http_faults.append(fault)
        return fault

    def add_accept_then_timeout(self, count: int = 1) -> None:
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count!r}")
        with self.lock:
            self.accept_then_timeout += int(count)

    def stall(self, seconds: float) -> float:
        """Stall WebSocket connections for ``seconds`` from now; returns the monotonic end time."""
        if seconds < 0:
            raise ValueError(f"a stall lasts >= 0 seconds, got {seconds!r}")
        with self.lock:
            self.stall_until = time.monotonic() + float(seconds)
            return self.stall_until

    def set_clock_skew(self, ms: int) -> None:
        with self.lock:
            self.clock_skew_ms = int(ms)

    def set_response_delay(self, ms: int) -> None:
        if ms < 0:
            raise ValueError(f"a response delay is >= 0 ms, got {ms!r}")
        with self.lock:
            self.response_delay_ms = int(ms)

    def reset(self) -> None:
        """Switch every fault off."""
        with self.lock:
            self.clock_skew_ms = 0
            self.response_delay_ms = 0
            self.http_faults.clear()
            self.accept_then_timeout = 0
            self.stall_until = 0.0

    def snapshot(self) -> dict[str, Any]:
        """The current switches as plain JSON-able data (the admin endpoint's ``faults``)."""
        with self.lock:
            return {
                "clock_skew_ms": self.clock_skew_ms,
                "response_delay_ms": self.response_delay_ms,
                "http_faults": [
                    {
                        "status": f.status,
                        "count": f.count,
                        "retry_after": f.retry_after,
                        "path_prefix": f.path_prefix,
                        "method": f.method,
                    }
                    for f in self.http_faults
                ],
                "accept_then_timeout": self.accept_then_timeout,
                "stalled_seconds": round(max(0.0, self.stall_until - time.monotonic()), 3),
            }
