"""The emulator's HTTP + WebSocket server: one exchange dialect on loopback, in a thread.

:class:`Emulator` wires the pieces together: it replays markets (a CSV file or a seeded
synthetic market) into the :class:`~.engine.Engine`, serves the dialect's REST and WebSocket
routes plus an admin API under ``/_emulator/`` with aiohttp on its own asyncio loop in a daemon
thread, drives the engine's clock, and exposes fault injection both in process and over HTTP::

    from realtrade_core.emulator import Emulator

    with Emulator("binance", symbols=["BTC/USDT"], speed=60) as emu:
        exchange = emu.ccxt_client()          # unmodified ccxt, only urls["api"] replaced
        exchange.fetch_ohlcv("BTC/USDT", "1m")
        emu.fail_http(429, retry_after=1)     # the next REST call gets a 429
        emu.drop_connections()                # every WebSocket client is cut
        emu.balances()["USDT"].free           # what the account holds, read without REST
        emu.orders(status="open")             # every order, fill and refusal, as the engine saw it

Admin API (JSON): ``GET /_emulator/state``; ``POST /_emulator/faults`` with any of
``{"drop_connections": true}`` (or ``"private"`` / ``"public"``: only the account's or only the
market data connections), ``{"stall_seconds": 5}``, ``{"malformed": true}`` (or ``"private"`` /
``"public"``), ``{"http_status": 429, "count": 2, "retry_after": 1, "path_prefix": "/api",
"method": "DELETE"}``,
``{"timeout_next_order": 1}``, ``{"clock_skew_ms": 5000}``, ``{"response_delay_ms": 100}``,
``{"reset": true}``; ``POST /_emulator/step`` with ``{"candles": n}`` or ``{"ms": n}`` (manual
clocks only); ``POST /_emulator/ack`` with ``{"time": close_ms}`` (lockstep: the client has acted
on that candle close, the next candle may open; see :mod:`.lockstep`); ``POST /_emulator/orders``
with ``{"client_order_ids": [...], "account": api_key}`` (where the replay waits and those
orders' status and filled amount: what a lockstep client applies before it uses a bar);
``POST /_emulator/perpetual`` with ``{"symbol": "BTC/USDT:USDT", "mark_price": "58000"}`` and / or
``{"funding_rate": "0.0003"}`` (a perpetual's mark price, None to follow the last price again,
and the rate of its next fundings; answers them with the next funding time).

Matching rules are the engine's (see :mod:`realtrade_core.emulator.engine`): market orders fill
at once at the last price, limit orders rest and fill at their price when the replayed price
path reaches it, stops trigger when the path crosses them, fees are charged in the asset
received.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from aiohttp import web

from ..errors import ConfigurationError, EmulatorError
from . import replay
from .clock import EmulatedClock
from .contracts import contract_market_spec
from .dialect import EmulatorDialect
from .engine import Engine
from .faults import Faults, HttpFault
from .hub import ConnectionHub
from .lockstep import LockstepPacer
from .model import (
    AccountConfig,
    Balance,
    Candle,
    EngineError,
    Fill,
    Income,
    MarketSpec,
    Order,
    OrderStatus,
    Position,
    RefusedOrder,
)

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_SETTINGS", "Emulator", "EmulatorError", "interval_to_ms", "parse_balances"]

#: Dialect settings every emulator starts from; ``settings=`` is merged over them.
DEFAULT_SETTINGS: dict[str, Any] = {
    "ping_interval": 20.0,  # seconds between server pings (Binance style)
    "pong_timeout": 60.0,  # seconds without a pong before the server disconnects
    "idle_timeout": 600.0,  # seconds without client traffic before the server disconnects (Bybit)
}

DEFAULT_QUOTE_BALANCE = Decimal(100_000)
DEFAULT_BASE_BALANCE = Decimal(10)
#: Future candles generated beyond ``history`` for a synthetic market, unless ``future=`` says:
#: enough for a day of real time at the chosen speed, within these bounds. The engine needs the
#: whole series up front and generating costs ~30 us a candle, so the bounds keep startup well
#: under half a second; past the last candle the market stands still at its last close.
SYNTHETIC_FUTURE_MIN = 1_000
SYNTHETIC_FUTURE_MAX = 5_000
#: Rough USD prices that make a synthetic market look familiar; unknown bases trade near 100.
_USD_PRICES = {
    "BTC": 60_000, "ETH": 3_000, "BNB": 600, "SOL": 150, "XRP": 0.5, "ADA": 0.4, "DOGE": 0.15,
    "LTC": 80, "DOT": 6, "AVAX": 30, "LINK": 15, "TRX": 0.12, "TON": 5,
    "USDT": 1, "USDC": 1, "FDUSD": 1, "BUSD": 1, "DAI": 1, "TUSD": 1, "USD": 1, "EUR": 1.1,
}  # fmt: skip
STEPS_PER_CANDLE = 4
ADMIN_PREFIX = "/_emulator/"

_START_TIMEOUT = 10.0  # seconds start() waits for the port to listen
_STOP_TIMEOUT = 10.0
_DRIVER_MIN_PERIOD = 0.001
_DRIVER_MAX_PERIOD = 0.1
_HOLD_POLL = 0.05  # how often a held (accept-then-timeout) request checks for the client leaving
_NO_LIMIT = 2**62  # "every one" for the engine's list calls

_FAULT_KEYS = frozenset(
    {
        "reset", "drop_connections", "stall_seconds", "malformed", "http_status", "count", "retry_after",
        "path_prefix", "method", "timeout_next_order", "clock_skew_ms", "response_delay_ms",
    }
)  # fmt: skip

_INTERVAL_RE = re.compile(r"^(\d+)([smhdw])$")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def interval_to_ms(interval: str) -> int:
    """``"1m"`` -> 60000. Accepts s, m, h, d and w units (``"15m"``, ``"4h"``, ``"1d"``)."""
    match = _INTERVAL_RE.match(interval.strip())
    if not match or int(match.group(1)) <= 0:
        raise ConfigurationError(f"invalid candle interval {interval!r}: use e.g. '1m', '5m', '1h', '1d'")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def parse_balances(balances: Mapping[str, Any]) -> dict[str, Decimal]:
    """``{"USDT": 10000, "BTC": "0.5"}`` as Decimals, checked: asset names are letters and
    digits, amounts are finite and not negative. Raises ConfigurationError naming the bad entry."""
    parsed: dict[str, Decimal] = {}
    for asset, amount in balances.items():
        if not isinstance(asset, str) or not asset.isalnum():
            raise ConfigurationError(f"invalid asset {asset!r} in balances: use an asset name such as 'USDT'")
        try:
            value = Decimal(str(amount)) if not isinstance(amount, bool) else None
        except (InvalidOperation, ValueError):
            value = None
        if value is None or not value.is_finite() or value < 0:
            raise ConfigurationError(
                f"invalid balance {amount!r} for {asset}: give a number that is not negative, e.g. 10000 or 0.5"
            )
        parsed[asset.upper()] = value
    return parsed


def _split_symbol(symbol: str) -> tuple[str, str, str]:
    """``"BTC/USDT"`` (or the perpetual ``"BTC/USDT:USDT"``) -> ``("BTCUSDT", "BTC", "USDT")``."""
    pair, _, settle = symbol.partition(":")
    parts = pair.split("/")
    if len(parts) != 2 or not all(p.isalnum() for p in parts) or (settle and settle.upper() != parts[1].upper()):
        raise ConfigurationError(
            f"invalid symbol {symbol!r}: give spot symbols as BASE/QUOTE, e.g. 'BTC/USDT', and USDT-margined "
            f"perpetuals as BASE/QUOTE:QUOTE, e.g. 'BTC/USDT:USDT'"
        )
    base, quote = (p.upper() for p in parts)
    return base + quote, base, quote


def _is_contract(symbol: str) -> bool:
    """Whether a ccxt unified symbol names a perpetual (``BTC/USDT:USDT``)."""
    return ":" in symbol


def _synthetic_start_price(base: str, quote: str) -> Decimal:
    """A plausible first price for a synthetic ``base/quote`` market (BTC/USDT near 60000)."""
    price = Decimal(str(_USD_PRICES.get(base, 100))) / Decimal(str(_USD_PRICES.get(quote, 1)))
    # Keep 6 significant digits: ETH/BTC 0.05, not 0.05000000000000000277.
    return Decimal(f"{price:.6g}")


def _resolve_dialect(exchange: str | type[EmulatorDialect]) -> tuple[type[EmulatorDialect], str]:
    """The dialect class and ccxt id for an exchange name or a dialect class."""
    if isinstance(exchange, type) and issubclass(exchange, EmulatorDialect):
        return exchange, exchange.name
    if not isinstance(exchange, str):
        raise ConfigurationError(f"exchange must be a name or an EmulatorDialect subclass, got {exchange!r}")
    from ..host import load_exchange

    spec = load_exchange(exchange)
    if spec.emulator is None:
        raise ConfigurationError(
            f"the {exchange!r} plugin ({spec.name}) has no emulator dialect; "
            f"run `realtrade exchanges` to see which exchanges can be emulated"
        )
    return spec.emulator, spec.ccxt_exchange_id


class Emulator:
    """An emulated exchange served on loopback; see the module docstring.

    ``speed`` 1.0 runs the market in real time, 60.0 makes a minute pass every second, ``None``
    gives a manual clock moved only by :meth:`step` / :meth:`advance`. ``data`` is a CSV file
    (one symbol) or a dict symbol -> CSV file; symbols without data get a seeded synthetic market
    whose live part starts now. ``interval`` applies to synthetic markets; a CSV file carries
    its own interval. ``future`` is how many candles a synthetic market has after ``history``
    (default: a day of real time at ``speed``, between 1,000 and 5,000, so startup stays fast);
    past the last candle the market stands still at its last close.

    ``lockstep=True`` (with a ``speed``) makes the replay wait at every candle close until the
    client acknowledges it (:meth:`ack`); realtrade's broker does so by itself. See
    :mod:`realtrade_core.emulator.lockstep`; real venues are not lockstep.

    The default account (``api_key`` / ``secret``, random unless given) holds ``balances``, by
    default 100,000 of each quote asset and 10 of each base asset (given balances replace the
    defaults; :attr:`initial_balances` keeps what it started with). Read and change the account
    from Python with :meth:`balances`, :meth:`set_balance`, :meth:`orders`, :meth:`order`,
    :meth:`fills` and :meth:`refused_orders`; none of them goes through the wire protocol. ``settings`` are merged over
    :data:`DEFAULT_SETTINGS` and handed to the dialect; ``markets`` replaces the derived
    :class:`~.model.MarketSpec` of a symbol (and adds symbols not listed).
    """

    def __init__(
        self,
        exchange: str | type[EmulatorDialect] = "binance",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        symbols: Iterable[str] = ("BTC/USDT",),
        data: str | Path | Mapping[str, str | Path] | None = None,
        history: int = 500,
        speed: float | None = 1.0,
        seed: int = 0,
        interval: str = "1m",
        api_key: str | None = None,
        secret: str | None = None,
        balances: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        markets: Sequence[MarketSpec] | None = None,
        future: int | None = None,
        lockstep: bool = False,
    ) -> None:
        dialect_cls, self._ccxt_id = _resolve_dialect(exchange)
        if lockstep and speed is None:
            raise ConfigurationError(
                "lockstep paces a running replay: give it a speed (e.g. speed=600); a manual clock "
                "(speed=None) already waits for step()"
            )
        self.lockstep = bool(lockstep)
        if speed is not None and speed <= 0:
            raise ConfigurationError(f"speed must be positive (or None for a manual clock), got {speed!r}")
        if history < 1:
            raise ConfigurationError(f"history must be at least 1 candle, got {history!r}")
        if future is not None and future < 1:
            raise ConfigurationError(f"future must be at least 1 candle, got {future!r}")
        self.exchange = dialect_cls.name
        self.host = host
        self.speed = speed
        self.seed = seed
        self.interval = interval
        self.interval_ms = interval_to_ms(interval)
        self.future = future if future is not None else self._default_future(speed, self.interval_ms)
        self.api_key = api_key or secrets.token_hex(32)
        self.secret = secret or secrets.token_hex(32)
        self.settings: dict[str, Any] = {**DEFAULT_SETTINGS, **(settings or {})}
        self._requested_port = int(port)

        self.faults = Faults()
        # The loop exists from the start because the hub (and so the dialect) is bound to it;
        # it only runs once start() launches the server thread.
        self._loop = asyncio.new_event_loop()
        self.hub = ConnectionHub(self._loop, self.faults)

        try:
            self._build(dialect_cls, list(symbols), data, history, markets or (), balances)
        except BaseException:
            self._loop.close()  # nothing will ever run it
            raise

        self._port: int | None = None
        self._urls: dict[str, str] | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._state_lock = threading.Lock()
        self._stopped = False
        self._runner: web.AppRunner | None = None
        self._driver: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None
        self._unsubscribe: Callable[[], None] | None = None

    # --- construction helpers -----------------------------------------------------------------

    def _build(
        self,
        dialect_cls: type[EmulatorDialect],
        symbols: list[str],
        data: str | Path | Mapping[str, str | Path] | None,
        history: int,
        markets: Sequence[MarketSpec],
        balances: Mapping[str, Any] | None,
    ) -> None:
        """Markets, clock, engine and dialect."""
        speed = self.speed
        paths_given = data is not None
        self.symbols, market_data, history = self._build_markets(dialect_cls, symbols, data, history, markets)
        self.history = history
        start_ms = Engine.start_time_for(market_data, history)
        if not paths_given and speed is not None:
            # A synthetic market's live candle began at "now" rounded down to the interval; a
            # running clock starts at the true now (inside that candle), so at speed 1 the
            # emulated time equals the wall clock that clients sign their requests with.
            start_ms = max(start_ms, int(time.time() * 1000))
        # Lockstep: a manual clock the driver moves at ``speed`` between acknowledgements.
        self.clock = EmulatedClock(start_ms, None if self.lockstep else speed)
        #: What the default account held at start (asset -> amount).
        self.initial_balances = self._default_balances(market_data) if balances is None else parse_balances(balances)
        account = AccountConfig(api_key=self.api_key, secret=self.secret, balances=dict(self.initial_balances))
        self.engine = Engine(
            market_data, history=history, clock=self.clock, accounts=[account], steps_per_candle=STEPS_PER_CANDLE,
            lockstep=self.lockstep,
        )  # fmt: skip
        self._pacer = LockstepPacer(self.engine, speed) if self.lockstep and speed else None
        self.dialect = dialect_cls(self.engine, self.hub, self.faults, self.settings)
        self.order_paths = frozenset(dialect_cls.order_paths)

    def _build_markets(
        self,
        dialect_cls: type[EmulatorDialect],
        symbols: list[str],
        data: str | Path | Mapping[str, str | Path] | None,
        history: int,
        explicit: Sequence[MarketSpec],
    ) -> tuple[list[str], list[tuple[MarketSpec, Sequence[Candle]]], int]:
        specs_by_id = {spec.symbol: spec for spec in explicit}
        unified: list[str] = []
        for symbol in symbols:
            if symbol not in unified:
                unified.append(symbol)
        # A spec given for a symbol not listed adds that market.
        for spec in explicit:
            name = f"{spec.base}/{spec.quote}:{spec.quote}" if spec.contract else f"{spec.base}/{spec.quote}"
            if name not in unified:
                unified.append(name)
        if not unified:
            raise ConfigurationError("the emulator needs at least one symbol, e.g. symbols=['BTC/USDT']")

        paths = self._data_paths(unified, data)
        # default_market() runs before the engine exists (the engine needs the specs), on a
        # bare instance: a dialect must answer it from static knowledge, not from self.engine.
        probe = dialect_cls.__new__(dialect_cls)
        EmulatorDialect.__init__(probe, None, self.hub, self.faults, self.settings)  # type: ignore[arg-type]

        from_files: dict[str, Sequence[Candle]] = {}
        for symbol, path in paths.items():
            try:
                candles = replay.load_candles_csv(path)
            except ValueError as exc:
                raise ConfigurationError(str(exc)) from exc
            if len(candles) < 2:
                raise ConfigurationError(f"{path}: needs at least 2 candles to replay, found {len(candles)}")
            if len(candles) <= history:
                log.warning(
                    "%s: %d candles, fewer than history=%d + 1; using %d as history",
                    path, len(candles), history, len(candles) - 1,
                )  # fmt: skip
                history = len(candles) - 1
            from_files[symbol] = candles

        # Synthetic markets go live where the replayed files do, or else at the current interval.
        if from_files:
            live_start = Engine.start_time_for([(None, c) for c in from_files.values()], history)  # type: ignore[misc]
        else:
            live_start = int(time.time() * 1000)
        live_start -= live_start % self.interval_ms

        loaded: list[tuple[str, str, str, Sequence[Candle]]] = []
        for index, symbol in enumerate(unified):
            engine_id, base, quote = _split_symbol(symbol)
            candles = from_files.get(symbol) or replay.synthetic_candles(
                seed=self.seed + index,
                count=history + self.future,
                interval_ms=self.interval_ms,
                start_ms=live_start - history * self.interval_ms,
                start_price=_synthetic_start_price(base, quote),
            )
            loaded.append((engine_id, base, quote, candles))

        markets: list[tuple[MarketSpec, Sequence[Candle]]] = []
        seen: dict[str, str] = {}
        for symbol, (engine_id, base, quote, candles) in zip(unified, loaded, strict=True):
            if engine_id in seen:
                raise ConfigurationError(
                    f"{seen[engine_id]!r} and {symbol!r} are one exchange symbol {engine_id}: an emulator serves "
                    f"either the spot market or the perpetual of a pair"
                )
            seen[engine_id] = symbol
            contract = _is_contract(symbol)
            spec = specs_by_id.get(engine_id)
            if spec is None and contract:
                spec = probe.default_contract_market(engine_id)
                if spec is None:
                    spot = replay.default_market_spec(engine_id, base, quote, candles[0].open)
                    spec = contract_market_spec(spot, probe.contract_fees)
            elif spec is None:
                spec = probe.default_market(engine_id)
                if spec is None:
                    spec = replay.default_market_spec(engine_id, base, quote, candles[0].open)
            if spec.contract != contract:
                raise ConfigurationError(
                    f"the market given for {symbol!r} is {'a perpetual' if spec.contract else 'spot'}: name perpetuals "
                    f"BASE/QUOTE:QUOTE (e.g. 'BTC/USDT:USDT') and give them MarketSpec(contract=True)"
                )
            markets.append((spec, candles))
        return unified, markets, history

    @staticmethod
    def _default_future(speed: float | None, interval_ms: int) -> int:
        day_ms = 86_400_000 * (speed or 1.0)
        return int(min(max(day_ms // interval_ms, SYNTHETIC_FUTURE_MIN), SYNTHETIC_FUTURE_MAX))

    @staticmethod
    def _data_paths(symbols: list[str], data: str | Path | Mapping[str, str | Path] | None) -> dict[str, Path]:
        """symbol -> CSV file, checked to exist."""
        paths: dict[str, Path] = {}
        if data is None:
            return paths
        if isinstance(data, (str, Path)):
            if len(symbols) != 1:
                raise ConfigurationError(
                    "data= as one CSV file serves exactly one symbol; for several symbols pass a dict "
                    "symbol -> CSV file (symbols without a file get a synthetic market)"
                )
            paths[symbols[0]] = Path(data)
        else:
            by_id = {_split_symbol(s)[0]: s for s in symbols}
            for key, path in data.items():
                # Accept "BTC/USDT" and "BTCUSDT" as keys.
                symbol = key if key in symbols else by_id.get(key.replace("/", "").upper())
                if symbol is None:
                    raise ConfigurationError(f"data given for {key!r}, which is not among the symbols {symbols}")
                paths[symbol] = Path(path)
        for symbol, path in paths.items():
            if not path.is_file():
                raise ConfigurationError(f"candle file for {symbol} not found: {path}")
        return paths

    @staticmethod
    def _default_balances(markets: list[tuple[MarketSpec, Sequence[Candle]]]) -> dict[str, Decimal]:
        balances: dict[str, Decimal] = {}
        for spec, _ in markets:
            if not spec.contract:  # a perpetual is margined in its quote asset only
                balances.setdefault(spec.base, DEFAULT_BASE_BALANCE)
            balances[spec.quote] = DEFAULT_QUOTE_BALANCE
        return balances

    # --- addresses ---------------------------------------------------------------------------

    def _require_started(self) -> int:
        if self._port is None:
            raise EmulatorError("the emulator is not running: call start() (or use it as a context manager)")
        return self._port

    @property
    def port(self) -> int:
        return self._require_started()

    @property
    def base_http(self) -> str:
        return f"http://{self._url_host}:{self._require_started()}"

    @property
    def base_ws(self) -> str:
        return f"ws://{self._url_host}:{self._require_started()}"

    @property
    def _url_host(self) -> str:
        # A wildcard bind is reached through loopback; IPv6 literals need brackets in URLs.
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"[{host}]" if ":" in host else host

    @property
    def urls(self) -> dict[str, str]:
        """The dialect's client URLs (``rest``, ``ws_public``, ...), from ``dialect.urls``."""
        self._require_started()
        if self._urls is None:
            self._urls = dict(self.dialect.urls(self.base_http, self.base_ws))
        return self._urls

    @property
    def admin_url(self) -> str:
        return self.base_http + ADMIN_PREFIX.rstrip("/")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopped

    def __repr__(self) -> str:
        where = f"{self.base_http}" if self._port is not None else "not started"
        key = self.api_key[:6] + "…"
        return f"<Emulator {self.exchange} {where} symbols={self.symbols} speed={self.speed} api_key={key}>"

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Start serving; returns once the port listens. Raises EmulatorError if it cannot bind."""
        with self._state_lock:
            if self._stopped:
                raise EmulatorError("this emulator was stopped; create a new one")
            if self._thread is not None:
                return self
            self._thread = threading.Thread(target=self._serve, name=f"realtrade-emulator-{self.exchange}", daemon=True)
            self._thread.start()
        if not self._ready.wait(_START_TIMEOUT):
            self.stop()
            raise EmulatorError(f"the {self.exchange} emulator did not start within {_START_TIMEOUT:.0f} s")
        if self._start_error is not None:
            self._thread.join(_STOP_TIMEOUT)
            with self._state_lock:
                self._stopped = True
            exc = self._start_error
            raise EmulatorError(
                f"the {self.exchange} emulator could not listen on {self.host}:{self._requested_port}: {exc}"
            ) from exc
        log.info("%s emulator listening on %s", self.exchange, self.base_http)
        return self

    def stop(self) -> None:
        """Close connections, stop the server and join its thread. Idempotent."""
        with self._state_lock:
            if self._stopped:
                return
            self._stopped = True
            thread = self._thread
        if thread is None:  # never started
            self._loop.close()
            self.dialect.close()
            return
        if threading.current_thread() is thread:
            raise EmulatorError("stop() cannot be called from the emulator's own loop thread")
        if self._loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            try:
                future.result(_STOP_TIMEOUT)
            except Exception:
                log.exception("emulator shutdown did not complete cleanly")
            try:
                self._loop.call_soon_threadsafe(self._loop.stop)
            except RuntimeError:  # already closed
                pass
        thread.join(_STOP_TIMEOUT)
        if thread.is_alive():
            log.warning("emulator thread %s did not exit within %.0f s", thread.name, _STOP_TIMEOUT)
        log.info("%s emulator stopped", self.exchange)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            try:
                loop.run_until_complete(self._startup())
            except BaseException as exc:
                self._start_error = exc
                loop.run_until_complete(self._release())
                return
            finally:
                self._ready.set()
            loop.run_forever()
        finally:
            try:
                self._cancel_leftover_tasks()
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def _cancel_leftover_tasks(self) -> None:
        tasks = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))

    async def _startup(self) -> None:
        self.hub.attach_loop_thread()
        self._stopping = asyncio.Event()
        app = web.Application(middlewares=[self._fault_middleware])
        app.router.add_routes(self.dialect.routes())
        app.router.add_routes(
            [
                web.get(ADMIN_PREFIX + "state", self._admin_state),
                web.post(ADMIN_PREFIX + "faults", self._admin_faults),
                web.post(ADMIN_PREFIX + "step", self._admin_step),
                web.post(ADMIN_PREFIX + "ack", self._admin_ack),
                web.post(ADMIN_PREFIX + "orders", self._admin_orders),
                web.post(ADMIN_PREFIX + "perpetual", self._admin_perpetual),
            ]
        )
        # No access log: it costs more than most handlers. Short shutdown: held requests and
        # WebSockets are closed by _shutdown() before the runner waits for handlers.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        self._unsubscribe = self.engine.subscribe(self.dialect.on_event)
        if self.speed is not None:
            self._driver = asyncio.get_running_loop().create_task(self._drive(), name="emulator-driver")

    async def _shutdown(self) -> None:
        assert self._stopping is not None
        self._stopping.set()  # releases held requests
        if self._driver is not None:
            self._driver.cancel()
            await asyncio.gather(self._driver, return_exceptions=True)
        await self.hub.close_all()
        await self._release()

    async def _release(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        try:
            self.dialect.close()
        except Exception:
            log.exception("%s dialect failed to close", self.exchange)

    async def _drive(self) -> None:
        """Release the replayed market at the clock's pace: one engine advance per path step."""
        period = self.interval_ms / STEPS_PER_CANDLE / float(self.speed or 1.0) / 1000.0
        period = min(max(period, _DRIVER_MIN_PERIOD), _DRIVER_MAX_PERIOD)
        failures = 0
        while True:
            try:
                if self._pacer is not None:
                    self._pacer.tick()
                else:
                    self.engine.advance_to(self.clock.now())
                failures = 0
            except Exception:
                failures += 1
                # Log the first failure and then every 100th, not ten per second.
                if failures == 1 or failures % 100 == 0:
                    log.exception("engine failed to advance (%d consecutive failures)", failures)
            await asyncio.sleep(period)

    # --- manual clock ---------------------------------------------------------------------------

    def step(self, candles: int = 1) -> int:
        """Advance a manual clock candle by candle, emitting every event on the way: each step
        goes to the next candle close, so it closes exactly one candle even across a hole in the
        data. Returns the new emulated time (epoch ms)."""
        self._require_manual()
        if candles < 0:
            raise ValueError(f"cannot step a negative number of candles ({candles})")
        self.engine.step_candles(candles)
        return self.engine.now()

    def advance(self, ms: int) -> int:
        """Advance a manual clock by ``ms`` milliseconds; returns the new emulated time."""
        self._require_manual()
        self.engine.advance_to(self.clock.advance(ms))
        return self.engine.now()

    def _require_manual(self) -> None:
        if self.speed is not None:
            raise EmulatorError(
                f"this emulator's clock runs at speed {self.speed}; step()/advance() need Emulator(speed=None)"
            )

    def ack(self, time_ms: int | None = None) -> bool:
        """Lockstep: the client has acted on the candle close at ``time_ms`` (None: the close the
        replay waits at); the next candle may open. Returns whether that released the replay
        (False for an earlier close, or when nothing waits)."""
        if self._pacer is None:
            raise EmulatorError("ack() is for a lockstep emulator: Emulator(..., lockstep=True, speed=...)")
        return self._pacer.ack(time_ms)

    def streams_candles(self, symbol: str) -> bool:
        """Whether a client is subscribed to a stream of ``symbol``'s candles (``"BTC/USDT"``; a
        contract ``"BTC/USDT:USDT"`` streams under the same market id)."""
        wanted = symbol.split(":")[0].replace("/", "").lower()
        topics = [t.lower().replace("/", "").replace("-", "") for t in list(self.hub._by_topic)]  # who listens
        return any(("kline" in t or "candle" in t) and wanted in t for t in topics)

    def order_states(self, client_order_ids: Iterable[str], account: str | None = None) -> dict[str, Any]:
        """Lockstep: what ``POST /_emulator/orders`` answers. ``held_at`` is the instant the replay
        waits at (None while it runs) and ``held_for`` why (``"close"``: candles closed then;
        ``"orders"``: orders traded at that step); ``orders`` maps each of the account's ``client_order_ids``
        (ids it does not have are left out) to its ``status`` and ``filled`` amount (a string).
        A live broker reads it before it hands a bar to its strategy and before it acknowledges
        the close, to apply every fill and final status up to there first (see :mod:`.lockstep`)."""
        key = self._account_key(account)
        orders: dict[str, Any] = {}
        for cid in client_order_ids:
            try:
                order = self.engine.get_order(key, client_order_id=str(cid))
            except EngineError:
                continue
            orders[order.client_order_id] = {"status": order.status.value, "filled": str(order.filled)}
        engine = self.engine
        return {"held_at": engine.held_at, "held_for": engine.held_for, "orders": orders}

    # --- faults -----------------------------------------------------------------------------------

    def drop_connections(self, private: bool | None = None) -> int:
        """Cut every WebSocket connection now; returns how many were cut. ``private`` True cuts
        only the account's (authenticated) connections, False only the others (market data)."""
        return self.hub.drop_all(private)

    def stall_connections(self, seconds: float) -> int:
        """Stall every WebSocket for ``seconds``: nothing sent, nothing read, no pong; the
        connections stay open. Returns how many connections are stalled."""
        return self.hub.stall(seconds)

    def send_malformed(self, private: bool | None = None) -> int:
        """Send one non-JSON text frame on every WebSocket (``private`` as for
        :meth:`drop_connections`); returns the count."""
        return self.hub.send_malformed(private)

    def fail_http(
        self, status: int, count: int = 1, retry_after: int | None = None, path_prefix: str = "", method: str = ""
    ) -> HttpFault:
        """Answer the next ``count`` REST requests under ``path_prefix`` (with ``method``, if
        given) with ``status`` in the dialect's error format (with ``Retry-After`` when
        ``retry_after`` is given). The record returned counts down as requests consume it."""
        return self.faults.add_http_fault(status, count, retry_after, path_prefix, method)

    def timeout_next_order(self, count: int = 1) -> None:
        """The next ``count`` order placements are executed by the engine, then never answered."""
        self.faults.add_accept_then_timeout(count)

    def set_clock_skew(self, ms: int) -> None:
        """Shift the server time the dialect reports and checks timestamps against."""
        self.faults.set_clock_skew(ms)

    def set_response_delay(self, ms: int) -> None:
        """Delay every REST answer by ``ms`` milliseconds."""
        self.faults.set_response_delay(ms)

    def reset_faults(self) -> None:
        """Switch every fault off (a stall ends now)."""
        self.faults.reset()
        if self.running:
            self.hub.unstall()

    # --- ccxt -------------------------------------------------------------------------------------

    @property
    def contracts(self) -> bool:
        """Whether this emulator serves perpetuals (``BTC/USDT:USDT``) rather than spot."""
        return any(spec.contract for spec in self.engine.markets.values())

    def ccxt_client(self, **config: Any) -> Any:
        """An unmodified ccxt exchange talking to this emulator: only ``urls["api"]`` is
        replaced; keys are the default account's; ``enableRateLimit`` is False unless given.
        For perpetuals it is the exchange's futures class (``binanceusdm``) or its own with
        swap as the default type, loading linear markets only (``ccxt_contract_options``)."""
        import ccxt

        ccxt_id = self._ccxt_id
        options: dict[str, Any] = {"apiKey": self.api_key, "secret": self.secret, "enableRateLimit": False}
        if self.contracts:
            ccxt_id = self.dialect.ccxt_contract_id or ccxt_id
            options["options"] = dict(self.dialect.ccxt_contract_options)
        try:
            cls = getattr(ccxt, ccxt_id)
        except AttributeError:
            raise EmulatorError(f"ccxt {ccxt.__version__} has no exchange {ccxt_id!r}") from None
        options.update(config)
        client = cls(options)
        client.urls["api"] = self.dialect.ccxt_urls(self.base_http)
        return client

    # --- the account, read and set from Python -----------------------------------------------------

    def _account_key(self, account: str | None) -> str:
        key = self.api_key if account is None else account
        if self.engine.secret_for(key) is None:
            raise EmulatorError(f"no account with API key {key[:6]!r}...: leave account=None for the default account")
        return key

    def _engine_symbol(self, symbol: str | None) -> str | None:
        """``"BTC/USDT"`` or ``"BTCUSDT"`` -> the engine's ``"BTCUSDT"``, checked to be served."""
        if symbol is None:
            return None
        engine_id = _split_symbol(symbol)[0] if "/" in symbol else symbol.upper()
        if engine_id not in self.engine.markets:
            raise EmulatorError(f"this emulator serves no market {symbol!r}; it serves {self.symbols}")
        return engine_id

    def balances(self, account: str | None = None) -> dict[str, Balance]:
        """What an account holds now, by asset: ``Balance(asset, free, locked)`` in Decimals
        (``.total`` is both). ``account`` is an API key; None is the default account."""
        return {b.asset: b for b in self.engine.balances(self._account_key(account))}

    def set_balance(self, asset: str, amount: Any, account: str | None = None) -> None:
        """Set the free amount of ``asset`` (what open orders hold stays locked); the account's
        private stream reports the new balance (Binance ``outboundAccountPosition``, Bybit
        ``wallet``)."""
        self.set_balances({asset: amount}, account)

    def set_balances(self, balances: Mapping[str, Any], account: str | None = None) -> None:
        """:meth:`set_balance` for several assets, e.g. ``{"USDT": 10_000, "BTC": 0}``."""
        key = self._account_key(account)
        for asset, value in parse_balances(balances).items():
            self.engine.set_balance(key, asset, value)

    def orders(
        self,
        symbol: str | None = None,
        status: str | OrderStatus | None = None,
        account: str | None = None,
    ) -> list[Order]:
        """Every order an account placed, oldest first, however many there are.

        ``symbol``: ``"BTC/USDT"`` or ``"BTCUSDT"``. ``status``: ``"open"`` (new or partly filled),
        or one :class:`~.model.OrderStatus` (``"new"``, ``"partially_filled"``, ``"filled"``,
        ``"canceled"``, ``"rejected"``, ``"expired"``). Orders the emulator refused never became
        orders: read them with :meth:`refused_orders`.
        """
        key = self._account_key(account)
        wanted = self._status_filter(status)
        orders = self.engine.all_orders(key, self._engine_symbol(symbol), limit=_NO_LIMIT)
        return [o for o in orders if wanted(o)]

    @staticmethod
    def _status_filter(status: str | OrderStatus | None) -> Callable[[Order], bool]:
        if status is None:
            return lambda order: True
        if status == "open":
            return lambda order: order.status.is_open
        try:
            wanted = OrderStatus(status.lower() if isinstance(status, str) else status)
        except ValueError:
            allowed = ", ".join(["open", *(s.value for s in OrderStatus)])
            raise ValueError(f"unknown order status {status!r}; use one of {allowed}") from None
        return lambda order: order.status is wanted

    def order(
        self, order_id: int | str | None = None, *, client_order_id: str | None = None, account: str | None = None
    ) -> Order:
        """One order of an account by its id or client order id (open or closed); raises
        EmulatorError when the account has no such order."""
        key = self._account_key(account)
        try:
            return self.engine.get_order(
                key, order_id=int(order_id) if order_id is not None else None, client_order_id=client_order_id
            )
        except (EngineError, ValueError) as exc:
            raise EmulatorError(f"no such order ({exc})") from None

    def fills(
        self,
        symbol: str | None = None,
        order_id: int | str | None = None,
        client_order_id: str | None = None,
        account: str | None = None,
    ) -> list[Fill]:
        """Every trade of an account, oldest first, optionally of one market or one order."""
        key = self._account_key(account)
        wanted = int(order_id) if order_id is not None else None
        fills = self.engine.fills(key, self._engine_symbol(symbol), order_id=wanted, limit=_NO_LIMIT)
        if client_order_id is not None:
            fills = [f for f in fills if f.client_order_id == client_order_id]
        return fills

    # --- perpetuals, read and set from Python ---------------------------------------------------

    def positions(self, symbol: str | None = None, account: str | None = None) -> list[Position]:
        """The account's position in every perpetual (flat ones with size 0), or in one
        (``"BTC/USDT:USDT"`` or ``"BTCUSDT"``): size (signed), entry, mark, unrealised profit,
        liquidation price, leverage, margin mode and margin (see :mod:`.contracts`)."""
        return self.engine.positions(self._account_key(account), self._engine_symbol(symbol))

    def position(self, symbol: str, account: str | None = None) -> Position:
        return self.engine.position(self._account_key(account), self._engine_symbol(symbol) or symbol)

    def incomes(self, symbol: str | None = None, kind: str | None = None, account: str | None = None) -> list[Income]:
        """Every cash flow of the account's perpetuals, oldest first: ``kind`` ``FUNDING_FEE``,
        ``REALIZED_PNL``, ``COMMISSION`` or ``INSURANCE_CLEAR``."""
        return self.engine.incomes(self._account_key(account), self._engine_symbol(symbol), kind, limit=_NO_LIMIT)

    def set_mark_price(self, symbol: str, price: Any) -> None:
        """Hold a perpetual's mark price at ``price`` (None: follow the last traded price again);
        positions are checked for liquidation at once and ``markPrice`` streams report it."""
        self.engine.set_mark_price(self._engine_symbol(symbol) or symbol, price)

    def set_funding_rate(self, symbol: str, rate: Any) -> None:
        """The funding rate the next settlements of a perpetual apply (e.g. ``"0.0001"``)."""
        self.engine.set_funding_rate(self._engine_symbol(symbol) or symbol, rate)

    def set_leverage(self, symbol: str, leverage: int, account: str | None = None) -> int:
        return self.engine.set_leverage(self._account_key(account), self._engine_symbol(symbol) or symbol, leverage)

    def refused_orders(self, account: str | None = None) -> list[RefusedOrder]:
        """Order requests the emulator answered with an error, oldest first, each with the
        exchange's error ``code`` and ``reason`` and the request as sent (see
        :class:`~.model.RefusedOrder`). ``account`` is the API key the requests carried; None is
        the default account. The last 10,000 are kept."""
        return self.dialect.refusals(self.api_key if account is None else account)

    # --- state ------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """What ``GET /_emulator/state`` answers: ``time`` is the market clock (epoch ms),
        ``server_time`` what the time endpoints report (wall clock plus injected skew)."""
        return {
            "exchange": self.exchange,
            "symbols": list(self.symbols),
            "time": self.engine.now(),
            "server_time": self.dialect.server_time(),
            "speed": self.speed,
            "manual": self.speed is None,
            "lockstep": self._pacer.state() if self._pacer is not None else None,
            "interval": self.interval,
            "connections": len(self.hub.connections()),
            "faults": self.faults.snapshot(),
            # What a client in another process needs to connect (the secret is never served).
            "urls": self.urls,
            "ccxt_urls": self.dialect.ccxt_urls(self.base_http),
        }

    # --- HTTP plumbing ----------------------------------------------------------------------------

    @web.middleware
    async def _fault_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        path = request.path
        if path.startswith(ADMIN_PREFIX) or request.headers.get("Upgrade", "").lower() == "websocket":
            return await handler(request)
        faults = self.faults
        if faults.response_delay_ms > 0:
            await asyncio.sleep(faults.response_delay_ms / 1000.0)
        fault = faults.take_http_fault(path, request.method)
        if fault is not None:
            status, body = self.dialect.error_body(fault.status, fault.retry_after)
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
            log.info("fault: answering %s %s with HTTP %d", request.method, path, status)
            if (request.method, path) in self.order_paths:
                await self._record_injected_refusal(request, status, body)
            return web.json_response(body, status=status, headers=headers)
        if (request.method, path) in self.order_paths and faults.take_accept_then_timeout():
            try:
                await handler(request)  # the engine accepts (or rejects) the order...
            except web.HTTPException:
                pass
            log.info("fault: order request %s %s executed, answer withheld", request.method, path)
            await self._hold(request)  # ...and the client never hears about it
            return web.Response(status=504)  # written nowhere: the transport is gone by now
        return await handler(request)

    async def _record_injected_refusal(self, request: web.Request, status: int, answer: Any) -> None:
        """An order request answered by an injected fault was refused: it never reached the engine."""
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            text = await request.text()
            try:
                body = json.loads(text)
            except ValueError:
                body = dict(urllib.parse.parse_qsl(text))
            if isinstance(body, dict):
                params.update(body)
        header = self.dialect.api_key_header
        account = request.headers.get(header, "") if header else ""
        code, reason = self.dialect.error_code(status, answer)
        self.dialect.record_refusal(
            request.path, account, params, code, f"{reason} (injected fault)", http_status=status,
            client_order_id=next((str(params[k]) for k in self.dialect.client_order_id_params if params.get(k)), None),
        )  # fmt: skip

    async def _hold(self, request: web.Request) -> None:
        """Keep a request unanswered until the client gives up or the server stops, then cut it."""
        assert self._stopping is not None
        transport = request.transport
        while transport is not None and not transport.is_closing() and not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), _HOLD_POLL)
            except asyncio.TimeoutError:
                pass
        if transport is not None and not transport.is_closing():
            transport.abort()

    @staticmethod
    async def _json_body(request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            body = await request.json()
        except ValueError as exc:
            raise web.HTTPBadRequest(
                text=json.dumps({"error": f"body is not JSON: {exc}"}), content_type="application/json"
            ) from exc
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}', content_type="application/json")
        return body

    async def _admin_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())

    async def _admin_faults(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        try:
            result = self.apply_faults(body)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"applied": result, "faults": self.faults.snapshot()})

    def apply_faults(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Apply an admin fault request (keys as in the module docstring); returns what was done.

        Every value is checked before anything is applied, so a bad request changes nothing:
        unknown keys and bad values raise ValueError.
        """
        unknown = sorted(set(spec) - _FAULT_KEYS)
        if unknown:
            raise ValueError(f"unknown fault key(s) {unknown}; known: {sorted(_FAULT_KEYS)}")
        if "http_status" not in spec and any(k in spec for k in ("count", "retry_after", "path_prefix", "method")):
            raise ValueError("count, retry_after, path_prefix and method go with http_status")
        which: dict[str, bool | None] = {}
        for key in ("drop_connections", "malformed"):
            value = spec.get(key)
            if value in ("private", "public"):
                which[key] = value == "private"
            elif value is not None and not isinstance(value, bool):
                raise ValueError(f"{key} is true, false, 'private' or 'public', got {value!r}")

        def number(key: str, kind: type = int, minimum: float | None = None) -> Any:
            value = spec[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{key} must be a number, got {value!r}")
            if minimum is not None and value < minimum:
                raise ValueError(f"{key} must be >= {minimum}, got {value!r}")
            return kind(value)

        http: HttpFault | None = None
        if "http_status" in spec:
            http = HttpFault(  # validates status, count and retry_after
                status=number("http_status"),
                count=number("count") if "count" in spec else 1,
                retry_after=number("retry_after") if spec.get("retry_after") is not None else None,
                path_prefix=str(spec.get("path_prefix", "")),
                method=str(spec.get("method", "")),
            )
        stall = number("stall_seconds", float, 0) if "stall_seconds" in spec else None
        orders = number("timeout_next_order", int, 0) if "timeout_next_order" in spec else None
        skew = number("clock_skew_ms") if "clock_skew_ms" in spec else None
        delay = number("response_delay_ms", int, 0) if "response_delay_ms" in spec else None

        done: dict[str, Any] = {}
        if spec.get("reset"):
            self.reset_faults()
            done["reset"] = True
        if skew is not None:
            self.set_clock_skew(skew)
            done["clock_skew_ms"] = skew
        if delay is not None:
            self.set_response_delay(delay)
            done["response_delay_ms"] = delay
        if http is not None:
            self.fail_http(http.status, http.count, http.retry_after, http.path_prefix, http.method)
            done["http_status"] = http.status
        if orders is not None:
            self.timeout_next_order(orders)
            done["timeout_next_order"] = orders
        if spec.get("malformed"):
            done["malformed"] = self.send_malformed(which.get("malformed"))
        if spec.get("drop_connections"):
            done["drop_connections"] = self.drop_connections(which.get("drop_connections"))
        if stall is not None:
            done["stall_seconds"] = self.stall_connections(stall)
        return done

    async def _admin_ack(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        if self._pacer is None:
            return web.json_response({"error": "this emulator is not in lockstep (start it with lockstep)"}, status=409)
        value = body.get("time")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return web.json_response({"error": f"time must be the candle close in epoch ms, got {value!r}"}, status=400)
        released = self.ack(value)
        return web.json_response({"released": released, "time": self.engine.now(), "lockstep": self._pacer.state()})

    async def _admin_orders(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        ids = body.get("client_order_ids")
        account = body.get("account")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return web.json_response({"error": "client_order_ids must be a list of client order ids"}, status=400)
        if account is not None and not isinstance(account, str):
            return web.json_response({"error": "account must be an API key (a string)"}, status=400)
        try:
            return web.json_response(self.order_states(ids, account))
        except EmulatorError:
            return web.json_response({"error": "account must be the API key of an account of this emulator"},
                                     status=400)  # fmt: skip

    async def _admin_perpetual(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        symbol = body.get("symbol")
        if not isinstance(symbol, str):
            return web.json_response({"error": "symbol must be a perpetual this emulator serves, e.g. 'BTC/USDT:USDT'"},
                                     status=400)  # fmt: skip
        try:
            return web.json_response(self.perpetual(symbol, **{k: v for k, v in body.items() if k != "symbol"}))
        except (EmulatorError, EngineError, ValueError, TypeError, InvalidOperation) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    def perpetual(self, symbol: str, **changes: Any) -> dict[str, Any]:
        """What ``POST /_emulator/perpetual`` does: set a perpetual's ``mark_price`` (a number, or
        None to follow the last price again) and / or ``funding_rate``, then answer its mark
        price, funding rate and next funding time (epoch ms) as strings and an int."""
        unknown = sorted(set(changes) - {"mark_price", "funding_rate"})
        if unknown:
            raise ValueError(f"unknown key(s) {unknown}; known: ['funding_rate', 'mark_price', 'symbol']")
        engine_id = self._engine_symbol(symbol) or symbol
        if "funding_rate" in changes:
            self.engine.set_funding_rate(engine_id, changes["funding_rate"])
        if "mark_price" in changes:
            self.engine.set_mark_price(engine_id, changes["mark_price"])
        engine = self.engine
        return {
            "symbol": symbol,
            "mark_price": str(engine.mark_price(engine_id)),
            "funding_rate": str(engine.funding_rate(engine_id)),
            "next_funding_time": engine.next_funding_time,
        }

    async def _admin_step(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        if self.speed is not None:
            return web.json_response(
                {"error": f"the clock runs at speed {self.speed}; stepping needs a manual clock"}, status=409
            )
        try:
            if "ms" in body:
                self.advance(int(body["ms"]))
            else:
                self.step(int(body.get("candles", 1)))
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"time": self.engine.now()})
