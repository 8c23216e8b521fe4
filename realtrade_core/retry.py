"""One retry policy for every REST read realtrade makes: what is worth retrying, how long to wait
(the exchange's own word first, else exponential backoff with jitter, capped), and when to stop.

Used by the store (history paging, catch-up, the exchange clock), the feed's worker and the live
broker's reads and lookups. Creating an order is never retried here: a lost create answer is an
*unknown outcome* that the broker resolves by looking the order up (:mod:`realtrade_core.live`).

- **Transient** errors are retried: every ``ccxt.OperationFailed`` (timeouts, connection errors,
  5xx, unreadable answers, 429/418 rate limits). A refused timestamp (``InvalidNonce``) is retried
  at most :data:`NONCE_RETRIES` times, re-measuring the clock first when the caller can.
- **Permanent** errors propagate at once: a bad symbol, a refused key (``AuthenticationError``,
  ``PermissionDenied``), any other ``ccxt.ExchangeError``, and anything that is not a ccxt error.
- **How long**: a rate limit waits as long as the exchange asks (``Retry-After``, or what the
  store's :meth:`~realtrade_core.store.Store.retry_after` reads from the error and headers
  through the exchange's execution dialect: a ban's deadline, a limit's reset), and every REST
  call to that venue from this process waits with it (:class:`RateGate`): a ban is per IP.
  Other errors back off exponentially from :data:`BACKOFF_INITIAL` seconds with jitter, capped
  at :data:`BACKOFF_CAP`.
- **When to stop**: when the thread's ``stopping`` event is set (the last error propagates), or
  when the next wait would pass ``patience`` seconds since the first attempt. A thread sets its
  own policy with :func:`context` (the feed's worker waits without limit and reports DELAYED
  meanwhile); calls outside any context give up after :data:`DEFAULT_PATIENCE` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

log = logging.getLogger(__name__)

BACKOFF_INITIAL = 0.5  # seconds before the first retry of an error that asks for no wait
BACKOFF_CAP = 30.0  # longest backoff between two attempts
BACKOFF_JITTER = 0.5  # up to this many seconds added at random, so clients do not retry in step
MAX_ASKED_WAIT = 3 * 86_400.0  # Binance bans last from 2 minutes up to 3 days
DEFAULT_PATIENCE = 300.0  # seconds a call outside any context keeps trying
NONCE_RETRIES = 2  # a timestamp refused again after re-measuring the clock is a real clock problem


class RateGate:
    """A shared "not before" time: after a 429/418 every REST call to the venue waits it out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._not_before = 0.0

    def block(self, seconds: float) -> None:
        with self._lock:
            self._not_before = max(self._not_before, time.monotonic() + max(0.0, seconds))

    def remaining(self) -> float:
        with self._lock:
            return max(0.0, self._not_before - time.monotonic())

    def wait(self, stopping: threading.Event | None = None) -> bool:
        """Wait until the gate opens; False if ``stopping`` was set first."""
        while True:
            left = self.remaining()
            if left <= 0:
                return True
            if stopping is not None:
                if stopping.wait(left):
                    return False
            else:
                time.sleep(left)


_gates: dict[tuple, RateGate] = {}
_gates_lock = threading.Lock()


def gate_for(store: Any) -> RateGate:
    """The rate gate of ``store``'s venue, shared by every store of this process on it (an IP ban
    covers them all); each emulator has its own."""
    emulator = getattr(store, "emulator", None)
    where = getattr(store, "emulator_url", None) or (id(emulator) if emulator is not None else None)
    key = (getattr(store, "exchange", None), getattr(store, "venue", None), where)
    with _gates_lock:
        gate = _gates.get(key)
        if gate is None:
            gate = _gates[key] = RateGate()
        return gate


@dataclass(frozen=True)
class RetryContext:
    """How a thread's REST calls retry: ``stopping`` ends the waiting (the last error is raised),
    ``waiting(error, seconds)`` is called before each wait (the feed reports DELAYED), and
    ``patience`` bounds the total time (None: until ``stopping``)."""

    stopping: threading.Event | None = None
    waiting: Callable[[BaseException, float], None] | None = None
    patience: float | None = DEFAULT_PATIENCE


_DEFAULT = RetryContext()
_local = threading.local()


def current() -> RetryContext:
    """The calling thread's retry context (the default one outside :func:`context`)."""
    return getattr(_local, "context", None) or _DEFAULT


@contextlib.contextmanager
def context(**changes: Any) -> Iterator[RetryContext]:
    """Set the calling thread's retry context for the ``with`` block (fields of
    :class:`RetryContext`; the ones not given keep their current value)."""
    previous = getattr(_local, "context", None)
    ctx = replace(previous or _DEFAULT, **changes)
    _local.context = ctx
    try:
        yield ctx
    finally:
        _local.context = previous


# --- classification ---------------------------------------------------------------------------------


def is_rate_limit(exc: BaseException) -> bool:
    """A 429/418-style refusal (in ccxt 4 RateLimitExceeded is not a DDoSProtection)."""
    import ccxt

    return isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded))


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the request failed on the way, not because of what it asked."""
    import ccxt

    return isinstance(exc, ccxt.OperationFailed)


def is_permanent(exc: BaseException) -> bool:
    """Asking again cannot help: a bad symbol, a refused key, a request the exchange refuses."""
    import ccxt

    return isinstance(exc, ccxt.BaseError) and not is_transient(exc)


def header(headers: Any, name: str) -> str | None:
    """A response header's value, whatever the case of its name."""
    wanted = name.lower()
    for key, value in dict(headers or {}).items():
        if str(key).lower() == wanted:
            return None if value is None else str(value)
    return None


def retry_after_header(headers: Any) -> float | None:
    """Seconds from an HTTP ``Retry-After`` header given in seconds (None if absent or a date)."""
    value = header(headers, "Retry-After")
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


def requested_wait(store: Any, exc: BaseException) -> float | None:
    """Seconds the exchange asked us to wait after ``exc`` (None: it did not say), read by the
    store's :meth:`~realtrade_core.store.Store.retry_after` hook from the error and the last
    response's headers, capped at :data:`MAX_ASKED_WAIT`."""
    client = getattr(store, "_client", None)
    headers = dict(getattr(client, "last_response_headers", None) or {}) if client is not None else {}
    hook = getattr(store, "retry_after", None)
    try:
        wait = hook(exc, headers) if callable(hook) else retry_after_header(headers)
    except Exception:  # a plugin's parser must never turn a wait into a crash
        log.exception("retry_after hook failed")
        wait = retry_after_header(headers)
    if wait is None:
        return None
    return min(max(float(wait), 0.0), MAX_ASKED_WAIT)


_backoff: Any = None


def backoff(attempt: int) -> float:
    """The wait before retry number ``attempt`` (1, 2, ...) of an error that named no wait:
    exponential from :data:`BACKOFF_INITIAL`, jittered, capped at :data:`BACKOFF_CAP`."""
    global _backoff
    if _backoff is None:
        import tenacity

        _backoff = tenacity.wait_exponential_jitter(multiplier=BACKOFF_INITIAL, max=BACKOFF_CAP, jitter=BACKOFF_JITTER)
    return float(_backoff(SimpleNamespace(attempt_number=max(1, int(attempt)))))


def wait_after(store: Any, exc: BaseException, attempt: int) -> float:
    """How long to wait after ``exc`` on retry number ``attempt``; a rate limit also closes the
    venue's gate for that long, so other threads wait with us."""
    asked = requested_wait(store, exc) if is_rate_limit(exc) else None
    if asked is not None:
        seconds = asked + random.uniform(0.0, min(1.0, asked * 0.1))  # jitter, not a secret
    else:
        seconds = backoff(attempt)
    if is_rate_limit(exc):
        gate_for(store).block(seconds)
    return seconds


_QUERY = re.compile(r"(https?://[^\s?\"']+)\?[^\s\"']*")


def describe(exc: BaseException, store: Any = None) -> str:
    """A short, log-safe line for ``exc``: URL query strings (signatures, keys) cut, the store's
    key and secret redacted."""
    text = _QUERY.sub(r"\1", f"{type(exc).__name__}: {exc}")
    creds = getattr(store, "credentials", None) if store is not None else None
    for secret in (getattr(creds, "api_key", None), getattr(creds, "secret", None)):
        if secret:
            text = text.replace(secret, "***")
    return text[:300]


# --- the call ------------------------------------------------------------------------------------


class _Stopped(Exception):
    """Internal: the thread's ``stopping`` event was set while waiting."""


def call(
    store: Any,
    func: Callable[..., Any],
    *args: Any,
    retry_context: RetryContext | None = None,
    resync: Callable[[], Any] | None = None,
    **kwargs: Any,
) -> Any:
    """``func(*args, **kwargs)``, retried under the calling thread's :class:`RetryContext` (or
    ``retry_context``). ``resync`` re-measures the clock before retrying a refused timestamp.

    Raises the last error when it is permanent, when ``stopping`` is set, or when patience runs
    out. Use it for reads (and idempotent requests such as cancels), never to create orders.
    """
    import ccxt
    import tenacity

    ctx = retry_context or current()
    gate = gate_for(store)
    nonces = 0
    last: list[BaseException] = []
    name = getattr(func, "__name__", "request")

    def should_retry(state: tenacity.RetryCallState) -> bool:
        nonlocal nonces
        exc = state.outcome.exception() if state.outcome is not None else None
        if exc is None or not is_transient(exc):
            return False
        if isinstance(exc, ccxt.InvalidNonce):
            nonces += 1
            return nonces <= NONCE_RETRIES
        return True

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception()
        if isinstance(exc, ccxt.InvalidNonce):
            return 0.0
        return wait_after(store, exc, state.attempt_number)

    def stop(state: tenacity.RetryCallState) -> bool:
        if ctx.stopping is not None and ctx.stopping.is_set():
            return True
        if ctx.patience is None:
            return False
        return state.seconds_since_start + state.upcoming_sleep > ctx.patience

    def before(state: tenacity.RetryCallState) -> None:
        if not gate.wait(ctx.stopping) and last:
            raise _Stopped

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception()
        last[:] = [exc]
        seconds = state.upcoming_sleep
        level = logging.WARNING if is_rate_limit(exc) or state.attempt_number >= 3 else logging.INFO
        log.log(level, "%s %s: %s failed (%s); retry %d in %.1f s", getattr(store, "exchange", ""),
                getattr(store, "venue", ""), name, describe(exc, store), state.attempt_number, seconds)  # fmt: skip
        if isinstance(exc, ccxt.InvalidNonce) and resync is not None:
            try:
                resync()
            except Exception as error:  # the next attempt reports the real problem
                log.debug("clock re-measurement failed: %s", describe(error, store))
        if ctx.waiting is not None and seconds > 0:
            ctx.waiting(exc, seconds)

    def sleep(seconds: float) -> None:
        if ctx.stopping is not None:
            if ctx.stopping.wait(seconds):
                raise _Stopped
        else:
            time.sleep(seconds)

    retrying = tenacity.Retrying(
        retry=should_retry,
        wait=wait,
        stop=stop,
        before=before,
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(func, *args, **kwargs)
    except _Stopped:
        raise last[0] from None
