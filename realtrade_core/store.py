"""Store: one connection to one exchange account on one venue.

A store owns the ccxt client, market metadata, the server-time offset and the shared WebSocket
connections of one (exchange, market type, account, venue), and hands out data feeds and a
broker wired to it by instance. It is lazy: nothing touches the network until :meth:`start`.
Stores come from :func:`get_store`, which keeps one per key in a thread-safe cache, so two
accounts, or testnet and mainnet, work side by side in one process.

Plugin contract (subclass :class:`Store`):

=====================  ========  ===========================================================
member                 required  meaning
=====================  ========  ===========================================================
``exchange``           yes       exchange name, equal to the plugin's entry-point name
``ccxt_id``            no        ccxt exchange id (default: ``exchange``)
``ccxt_ids``           no        ccxt exchange id per market type, where it differs from
                                 ``ccxt_id`` (e.g. ``{"perpetual": "binanceusdm"}``)
``max_page``           no        largest klines page the exchange serves (default 1000)
``ccxt_options()``     no        extra ccxt constructor options (e.g. ``defaultType``)
``stream_urls()``      no        WebSocket URLs for this venue, passed to the WebSocket class
``retry_after()``      no        seconds a rate-limited request must wait, from the error and the
                                 response headers (default: the exchange's execution dialect's
                                 reading, :meth:`~realtrade_core.execution.ExecutionDialect.retry_after`)
=====================  ========  ===========================================================

REST reads (markets, the clock, history pages) are retried by :mod:`realtrade_core.retry`:
timeouts, 5xx and rate limits are waited out, only permanent errors (a bad symbol, a refused key)
raise at once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from .arguments import check_broker_arguments, check_feed_arguments, check_symbol, check_venue, did_you_mean
from .contract import Contract
from .credentials import Credentials, fingerprint, protect, redact, scrub, scrub_exception
from .errors import ConfigurationError, ExchangeError, RealtradeError
from .events import Bar, ConnectionEvent, ConnectionState
from .host import get_plugin_host, load_exchange
from .interlock import check_emulator_url, check_emulator_urls, emulator_urls
from .retry import call as retrying
from .spec import StoreEvent
from .timeframes import Timeframe, check_supported, parse_timeframe

if TYPE_CHECKING:
    from .spec import ExchangeSpec

log = logging.getLogger(__name__)

VENUES = ("mainnet", "testnet", "emulator")
# How subscribe_bars and the account stream name a connection change (the states a socket reports).
_STATE_NAMES = {
    ConnectionState.CONNECTED: "connected",
    ConnectionState.DISCONNECTED: "disconnected",
    ConnectionState.FAILED: "failed",
}
DEFAULT_EMULATOR_SYMBOLS = ("BTC/USDT", "ETH/USDT")
DEFAULT_PERPETUAL_SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT")

#: The market types a store trades, as users write them -> realtrade's name for each.
#: ``"swap"`` is ccxt's word for a perpetual contract.
MARKET_TYPES = {"spot": "spot", "perpetual": "perpetual", "swap": "perpetual"}
#: realtrade's market type -> ccxt's ``market["type"]``.
CCXT_MARKET_TYPES = {"spot": "spot", "perpetual": "swap"}


def market_type_mismatch(symbol: str, market_type: str, exchange: str | None = None) -> str | None:
    """Why ``symbol`` cannot be traded on a store of ``market_type``, when its spelling says it is
    of the other kind (a spot ``BTC/USDT`` on a perpetual store, a ``BTC/USDT:USDT`` contract on
    a spot one); None when the spelling fits."""
    if not isinstance(symbol, str) or "/" not in symbol:
        return None
    where = f"this {exchange} store" if exchange else "this store"
    if market_type == "perpetual" and ":" not in symbol:
        quote = symbol.split("/", 1)[1]
        return (
            f"{symbol!r} is a spot symbol, but {where} trades perpetual contracts: write the "
            f"contract in ccxt's form {symbol}:{quote} (BASE/QUOTE:SETTLE), or use market_type='spot'"
        )
    if market_type == "spot" and ":" in symbol:
        return (
            f"{symbol!r} is a perpetual contract, but {where} trades spot: use "
            f"market_type='perpetual' for it, or the spot symbol {symbol.split(':', 1)[0]}"
        )
    return None


def check_market_type(market_type: Any, capabilities: Any = None, exchange: str | None = None) -> str:
    """realtrade's name for ``market_type`` ("spot" or "perpetual"; ccxt's "swap" is accepted
    for "perpetual"), or a ConfigurationError saying what to write instead. With the plugin's
    ``capabilities``, a market type the plugin does not declare is refused too."""
    if not isinstance(market_type, str) or market_type.strip().lower() not in MARKET_TYPES:
        hint = ""
        if isinstance(market_type, str) and market_type.strip().lower() in ("future", "futures", "linear", "usdm"):
            hint = (
                " USDT-margined perpetual contracts are market_type='perpetual' (ccxt's 'swap'); "
                "dated (delivery) futures are not supported yet."
            )
        raise ConfigurationError(f"market type {market_type!r} is not supported yet; use 'spot' or 'perpetual'.{hint}")
    name = MARKET_TYPES[market_type.strip().lower()]
    declared = getattr(capabilities, "market_types", None)
    if declared is not None and name not in declared:
        raise ConfigurationError(
            f"{exchange or 'this exchange'} does not support {name} markets: its plugin declares "
            f"{', '.join(sorted(declared))}; use market_type={sorted(declared)[0]!r} or another exchange"
        )
    return name


class Store(Contract):
    """Base class of every exchange store. See the module docstring for the plugin contract."""

    _required = ("exchange",)

    exchange: ClassVar[str | None] = None
    ccxt_id: ClassVar[str | None] = None
    ccxt_ids: ClassVar[dict[str, str]] = {}
    max_page: ClassVar[int] = 1000

    def __init__(
        self,
        venue: str = "emulator",
        api_key: str | None = None,
        secret: str | None = None,
        market_type: str = "spot",
        emulator_url: str | None = None,
        emulator_options: dict[str, Any] | None = None,
        ccxt_config: dict[str, Any] | None = None,
        spec: ExchangeSpec | None = None,
        emulator: Any = None,
        allow_remote_emulator: bool = False,
    ) -> None:
        check_venue(venue)
        market_type = check_market_type(market_type, spec.capabilities if spec is not None else None, self.exchange)
        self.venue = venue
        self.market_type = market_type
        self.allow_remote_emulator = bool(allow_remote_emulator)
        if emulator_url and venue != "emulator":
            raise ConfigurationError(
                f"emulator_url is only for venue='emulator', not {venue!r}: {venue} URLs come from the "
                f"exchange plugin; drop emulator_url or use venue='emulator'"
            )
        # Refused here, before anything is sent: a venue="emulator" store must never reach a
        # real exchange, where the mainnet interlock would not guard it.
        self.emulator_url = (
            check_emulator_url(
                emulator_url.rstrip("/"),
                exchange=self.exchange or "exchange",
                ccxt_id=self.ccxt_exchange_id,
                allow_remote=self.allow_remote_emulator,
                schemes=("http", "https"),
            )
            if emulator_url
            else None
        )
        self._emulator_options = dict(emulator_options or {})
        self._credentials = Credentials(api_key, secret)
        self._ccxt_config = dict(ccxt_config or {})
        self._spec = spec
        self._lock = threading.RLock()
        self._client: Any = None
        self._emulator: Any = None  # an in-process emulator this store started and owns
        self._attached: Any = emulator  # a running in-process emulator given by the caller
        self._urls: dict[str, str] = {}
        self._time_offset_ms = 0
        self._time_synced_at = 0.0  # time.monotonic() of the last clock measurement
        self.time_sync_interval = 300.0  # seconds between clock re-measurements
        self._notifications: deque = deque()
        self._listeners: list[Callable[[StoreEvent], None]] = []
        self._public_ws: Any = None
        self._private_ws: Any = None
        self._quarantined_before: dict[str, int] = {}  # counts of connections already stopped
        self._bar_routes: dict[tuple[str, str], list[Callable[[tuple], None]]] = {}
        self._bar_streams: dict[str, tuple[str, str]] = {}  # stream name -> its route's key
        self._account_routes: list[Callable[[Any], None]] = []
        self.started = False

    # --- identity ---------------------------------------------------------------------------

    @property
    def ccxt_exchange_id(self) -> str:
        """The ccxt exchange id this store's client is made from (per market type)."""
        return self.ccxt_ids.get(self.market_type) or self.ccxt_id or self.exchange or ""

    @property
    def perpetual(self) -> bool:
        """True for a store of USDT-margined perpetual contracts (``market_type="perpetual"``)."""
        return self.market_type == "perpetual"

    @property
    def ccxt_market_type(self) -> str:
        """ccxt's ``market["type"]`` for this store's markets ("spot" or "swap")."""
        return CCXT_MARKET_TYPES[self.market_type]

    @property
    def credentials(self) -> Credentials:
        return self._credentials

    @property
    def spec(self) -> ExchangeSpec:
        if self._spec is None:
            self._spec = load_exchange(self.exchange or "")
        return self._spec

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} exchange={self.exchange!r} venue={self.venue!r} "
            f"market_type={self.market_type!r} api_key={redact(self._credentials.api_key)!r}>"
        )

    # --- plugin hooks -------------------------------------------------------------------------

    def ccxt_options(self) -> dict[str, Any]:
        """Extra ccxt constructor options for this exchange; override in a plugin when needed."""
        return {}

    def stream_urls(self) -> dict[str, str]:
        """WebSocket URLs for the current venue (emulator: from the emulator)."""
        return dict(self._urls)

    def retry_after(self, error: BaseException, headers: dict[str, str]) -> float | None:
        """Seconds the exchange asked us to wait after the rate-limit ``error`` (None: it did not
        say); ``headers`` are the last response's. Read by the exchange's execution dialect
        (``Retry-After``, and whatever else its exchange says: a ban's deadline, a limit's reset),
        with the exchange's clock as this store measured it."""
        exchange_now = time.time() * 1000 + self._time_offset_ms
        return self.spec.execution.retry_after(error, headers, exchange_now)

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect: start the in-process emulator if needed, load markets, measure clock offset.

        Idempotent; cerebro calls it for every store, and feeds and brokers call it too.
        """
        with self._lock:
            if self.started:
                return
            if self.venue == "emulator":
                self._attach_emulator()
                self._check_emulator_urls()
            client = self.client
            self._call(retrying, self, client.load_markets)
            if self.perpetual and not any(m.get("type") == "swap" for m in (client.markets or {}).values()):
                raise ConfigurationError(
                    f"{self.exchange} {self.venue} lists no perpetual contracts"
                    + (" (this emulator does not serve the exchange's futures API)" if self.venue == "emulator" else "")
                    + "; use market_type='spot'"
                )
            self.sync_time()
            self.started = True
            self._emit("connected", f"{len(client.markets)} markets loaded")

    def stop(self) -> None:
        with self._lock:
            sockets = [ws for ws in (self._public_ws, self._private_ws) if ws is not None]
            self._public_ws = self._private_ws = None
        # Outside the lock: a closing socket's thread reports "disconnected" through handlers
        # that take the lock, and stop() joins that thread.
        for ws in sockets:
            ws.stop()
            for kind, count in ws.quarantined.items():
                self._quarantined_before[kind] = self._quarantined_before.get(kind, 0) + count
        with self._lock:
            self._bar_routes.clear()
            self._bar_streams.clear()
            self._account_routes.clear()
            if self._emulator is not None:
                self._emulator.stop()
                self._emulator = None
                # A restart starts a new emulator on another port: the client must be made anew.
                self._client = None
            self.started = False

    def _attach_emulator(self) -> None:
        if self._attached is not None:
            emu = self._attached
            if not self._credentials:
                self._credentials = Credentials(emu.api_key, emu.secret)
            self._urls = dict(emu.urls)
            self._ccxt_urls = emu.dialect.ccxt_urls(emu.base_http)
            return
        if self.emulator_url is None:
            from .emulator.server import Emulator

            default = DEFAULT_PERPETUAL_SYMBOLS if self.perpetual else DEFAULT_EMULATOR_SYMBOLS
            options = {"symbols": default, "speed": 1.0, **self._emulator_options}
            self._emulator = Emulator(self.exchange, **options).start()
            self._credentials = Credentials(self._emulator.api_key, self._emulator.secret)
            self._urls = {**self._emulator.urls, "ccxt_base": self._emulator.base_http}
            self._ccxt_urls = self._emulator.dialect.ccxt_urls(self._emulator.base_http)
            return
        # An emulator running elsewhere (e.g. `realtrade emulator`). Its URLs are the user's
        # emulator_url joined to the paths the plugin's dialect declares: never what the server
        # answers, which could name any host (a real exchange among them).
        dialect = self.spec.emulator
        if dialect is None:
            raise ConfigurationError(f"{self.exchange} has no emulator; use venue='testnet' or 'mainnet'")
        state = _get_json(f"{self.emulator_url}/_emulator/state")
        served = state.get("exchange") if isinstance(state, dict) else None
        if served != self.exchange:
            raise ConfigurationError(
                f"the emulator at {self.emulator_url} serves {served!r}, not {self.exchange!r}; "
                f"start one with `realtrade emulator --exchange {self.exchange}`"
            )
        self._urls, self._ccxt_urls = emulator_urls(dialect, self.emulator_url)

    def _check_emulator_urls(self) -> None:
        """Every URL this venue="emulator" store is about to use passes the interlock."""
        check_emulator_urls(
            [*self._urls.values(), *self._ccxt_urls.values()],
            exchange=self.exchange or "exchange",
            ccxt_id=self.ccxt_exchange_id,
            allow_remote=self.allow_remote_emulator,
            what="URL",
        )

    @property
    def emulator(self) -> Any:
        """The in-process emulator this store uses (None for a remote one or a real venue)."""
        return self._emulator or self._attached

    # --- ccxt -----------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The ccxt client, created on first use (imports ccxt)."""
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        import ccxt

        ccxt_id = self.ccxt_exchange_id
        try:
            cls = getattr(ccxt, ccxt_id)
        except AttributeError:
            raise ConfigurationError(f"ccxt has no exchange {ccxt_id!r}; see ccxt.exchanges for the ids") from None
        plugin = self.ccxt_options()
        config: dict[str, Any] = {"enableRateLimit": True, **plugin, **self._ccxt_config}
        if isinstance(plugin.get("options"), dict) and isinstance(self._ccxt_config.get("options"), dict):
            config["options"] = {**plugin["options"], **self._ccxt_config["options"]}  # the user's win, key by key
        if self._credentials:
            config["apiKey"] = self._credentials.api_key
            config["secret"] = self._credentials.secret
            protect(self._credentials)
        client = cls(config)
        # ccxt's verbose mode print()s every signed request, API key included; send it to a
        # logger instead, scrubbed (verbose may be switched on later: store.client.verbose = True).
        client.log = _ccxt_verbose_log
        if self.venue == "testnet":
            client.set_sandbox_mode(True)
        elif self.venue == "emulator":
            if not getattr(self, "_ccxt_urls", None):
                raise RealtradeError("the emulator is not attached yet; call store.start() first")
            self._check_emulator_urls()
            client.urls["api"] = dict(self._ccxt_urls)
            session = getattr(client, "session", None)
            if session is not None:
                # A loopback emulator answering with a redirect must not send our signed requests
                # on to wherever it points (a real exchange): redirects are refused, not followed.
                session.max_redirects = 0
        return client

    def _call(self, func: Callable[..., Any], *args: Any, _resync: bool = True, **kwargs: Any) -> Any:
        """Call ccxt, turning its errors into realtrade errors that say what to do.

        A refused timestamp (clock skew) re-measures the clock offset and retries once; use it
        for reads and cancels, never for creating orders (the broker resolves those itself).
        """
        import ccxt

        try:
            try:
                return func(*args, **kwargs)
            except ccxt.InvalidNonce:
                if not _resync:
                    raise
                log.warning("%s %s refused our clock; re-measuring the offset", self.exchange, self.venue)
                self.sync_time()
                return func(*args, **kwargs)
        except Exception as exc:
            scrub_exception(exc)  # ccxt's messages carry the signed URL: keep it out of tracebacks
            self._raise_as_realtrade(exc)
            raise

    def _raise_as_realtrade(self, exc: BaseException) -> None:
        """Raise the realtrade error for a ccxt error ``exc`` (chained); return for anything else."""
        import ccxt

        where = f"{self.exchange} {self.venue}"
        if isinstance(exc, ccxt.InvalidNonce):
            raise ExchangeError(
                f"{where}: the request timestamp was refused even after re-syncing "
                f"with the exchange clock ({exc}); check the system clock"
            ) from exc
        if isinstance(exc, ccxt.AuthenticationError):
            raise ExchangeError(
                f"{where}: the API key was refused ({type(exc).__name__}); check the key, secret and their permissions"
            ) from exc
        if isinstance(exc, ccxt.BadSymbol):
            raise ConfigurationError(f"{self.exchange}: {exc}") from exc
        if isinstance(exc, ccxt.NetworkError):
            self._emit("error", f"{type(exc).__name__}: {exc}")
            raise ExchangeError(f"{where} unreachable: {type(exc).__name__}: {exc}") from exc
        if isinstance(exc, ccxt.ExchangeError):
            raise ExchangeError(f"{where}: {type(exc).__name__}: {exc}") from exc

    # --- markets and time -------------------------------------------------------------------------

    def market(self, symbol: str) -> dict[str, Any]:
        """ccxt's market record for ``symbol``; a ConfigurationError with suggestions otherwise."""
        markets = self.client.markets or {}
        wanted = self.ccxt_market_type
        if symbol in markets and markets[symbol].get("type", wanted) == wanted:
            return markets[symbol]
        upper = symbol.upper()
        by_id = {m["id"].upper(): m for m in markets.values() if m.get("type", wanted) == wanted}
        if upper in by_id:
            return by_id[upper]
        mismatch = market_type_mismatch(symbol, self.market_type, self.exchange)
        if mismatch:
            raise ConfigurationError(mismatch)
        close = sorted(s for s in markets if s.split("/")[0] == upper.split("/")[0])[:5]
        hint = f" Did you mean {', '.join(close)}?" if close else did_you_mean(upper, markets, cutoff=0.7)
        example = "BASE/QUOTE:SETTLE, e.g. 'BTC/USDT:USDT'" if self.perpetual else "BASE/QUOTE, e.g. 'BTC/USDT'"
        raise ConfigurationError(
            f"{self.exchange} {self.venue} has no market {symbol!r}.{hint} Symbols are written {example}"
        )

    def symbols_by_id(self) -> dict[str, str]:
        """Exchange market id -> unified symbol for this store's market type, for stream parsers.

        ccxt 4 keeps a list of markets per id: ``BTCUSDT`` may be the spot and a perpetual market.
        """
        markets_by_id = self.client.markets_by_id
        if not markets_by_id:
            raise ConfigurationError(f"{self.exchange}: markets are not loaded; call store.start() first")
        out: dict[str, str] = {}
        for market_id, entries in markets_by_id.items():
            for market in entries if isinstance(entries, list) else [entries]:
                if market.get("type") == self.ccxt_market_type:
                    out[market_id] = market["symbol"]
                    break
        return out

    def timeframe(self, timeframe: str | int, compression: int | None = None) -> Timeframe:
        """Parse ``timeframe`` and check the exchange has such candles."""
        tf = parse_timeframe(timeframe, compression)
        supported = list((self._client.timeframes or {}) if self._client is not None else ())
        if not supported and self._spec is not None:
            supported = list(self._spec.capabilities.timeframes)
        check_supported(tf, supported, self.exchange or "this exchange")
        return tf

    def sync_time(self) -> int:
        """Measure the exchange clock's offset from ours (ms) and sign requests with it.

        Called at start and again whenever the exchange refuses a request's timestamp (a laptop
        waking from sleep, a drifting clock), so signed requests keep working.
        """
        local_before = time.time() * 1000
        server = self._call(retrying, self, self.client.fetch_time, _resync=False)
        local_after = time.time() * 1000
        self._time_offset_ms = int(server - (local_before + local_after) / 2)
        # ccxt signs with milliseconds() - timeDifference (Binance, Bybit and many others).
        self.client.options["timeDifference"] = -self._time_offset_ms
        self._time_synced_at = time.monotonic()
        return self._time_offset_ms

    def refresh_time(self) -> None:
        """Re-measure the clock offset when the last measurement is older than
        ``time_sync_interval``. Feeds call it from their worker threads, never from cerebro's."""
        if self.time_sync_due():
            try:
                self.sync_time()
            except RealtradeError as exc:
                log.warning("%s %s: could not re-measure the clock offset: %s", self.exchange, self.venue, exc)

    def time_sync_due(self) -> bool:
        """Whether :meth:`refresh_time` would measure the clock again now (a REST call)."""
        return time.monotonic() - self._time_synced_at >= self.time_sync_interval

    @property
    def time_offset_ms(self) -> int:
        return self._time_offset_ms

    def server_time(self) -> int:
        """The exchange's current time in ms, which decides which candles are closed.

        Real venues: asked from the exchange. The emulator: its market clock, which may run
        faster than real time, stand still (manual clock) or lie in the past (CSV replay).
        """
        emulator = self.emulator
        if emulator is not None:
            return int(emulator.engine.now())
        if self.venue == "emulator" and self.emulator_url:
            return int(_get_json(f"{self.emulator_url}/_emulator/state")["time"])
        return int(self._call(retrying, self, self.client.fetch_time))

    def exchange_ms(self) -> int:
        """The exchange's clock now (ms): the one its orders and fills are stamped with, so the
        ``since`` of every lookup of them. Real venues: our clock plus the measured offset (no
        request). The emulator: its market clock (a CSV replay lies in the past)."""
        if self.venue == "emulator":
            return self.server_time()
        return int(time.time() * 1000) + self._time_offset_ms

    # --- history ----------------------------------------------------------------------------------

    def fetch_closed_candles(
        self,
        symbol: str,
        tf: Timeframe,
        since: int,
        until: int | None = None,
        limit: int | None = None,
        price: str = "trade",
    ) -> list[list]:
        """Closed candles ``[open_ms, o, h, l, c, v]`` with ``since <= open_ms`` (and ``<= until``).
        ``price="mark"``: a perpetual's mark-price candles (ccxt's ``fetch_mark_ohlcv``), whose
        volume is 0.

        Paged within the exchange's page limit, oldest first, without gaps the exchange has data
        for and without duplicates. A candle counts as closed when its end is not after the
        exchange's clock, read before the first page, so the forming candle is never returned.
        Each page is retried under the calling thread's :mod:`realtrade_core.retry` context, so
        a 429 or a 5xx in the middle costs a wait, not the pages already fetched.
        """
        server_now = self.server_time()
        last_closed_open = (server_now // tf.ms) * tf.ms - tf.ms
        end = last_closed_open if until is None else min(until, last_closed_open)
        rows: list[list] = []
        cursor = since
        page = self.max_page
        fetch = self.client.fetch_mark_ohlcv if price == "mark" else self.client.fetch_ohlcv
        while cursor <= end:
            batch = self._call(retrying, self, fetch, symbol, tf.name, since=cursor, limit=page)
            if price == "mark":  # mark candles have no volume: ccxt gives None or 0
                batch = [[*r[:5], 0.0] for r in batch]
            fresh = [r for r in batch if r[0] >= cursor and r[0] <= end]
            if not fresh:
                # A hole longer than a page (an exchange outage): skip ahead past it.
                later = [r[0] for r in batch if r[0] > end]
                if later or not batch:
                    break
                cursor = batch[-1][0] + tf.ms
                continue
            rows.extend(fresh)
            cursor = fresh[-1][0] + tf.ms
            if limit is not None and len(rows) >= limit:
                break
        return rows[:limit] if limit is not None else rows

    def funding_info(self, symbol: str) -> Any:
        """The perpetual contract ``symbol``'s mark price, index price and the funding rate to be
        settled next, with its time (a :class:`~realtrade_core.perpetual.FundingInfo`), through
        ccxt's ``fetch_funding_rate`` (Binance ``premiumIndex``, Bybit's tickers)."""
        from .perpetual import FundingInfo

        if not self.perpetual:
            raise ConfigurationError(f"funding rates are for perpetual contracts; {symbol!r} is on a spot store")
        self.start()
        market = self.market(symbol)
        record = self._call(retrying, self, self.client.fetch_funding_rate, market["symbol"]) or {}

        def number(key: str) -> float | None:
            value = record.get(key)
            return float(value) if value is not None else None

        when = record.get("fundingTimestamp") or record.get("nextFundingTimestamp")
        return FundingInfo(
            symbol=market["symbol"],
            mark_price=number("markPrice"),
            index_price=number("indexPrice"),
            funding_rate=number("fundingRate"),
            next_funding_time=int(when) if when is not None else None,
            time=int(record["timestamp"]) if record.get("timestamp") is not None else None,
        )

    def funding_rates(self, symbol: str, since: int, until: int | None = None) -> Any:
        """The funding rates of the perpetual contract ``symbol`` settled from ``since`` to
        ``until`` (ms; None: now), as a :class:`~realtrade_core.perpetual.FundingRates` for a
        backtest: ``store.backtest_broker(symbol, funding=store.funding_rates(symbol, since))``.
        Paged through ccxt's ``fetch_funding_rate_history``, oldest first."""
        from .perpetual import FundingRates

        if not self.perpetual:
            raise ConfigurationError(f"funding rates are for perpetual contracts; {symbol!r} is on a spot store")
        self.start()
        market = self.market(symbol)
        end = self.exchange_ms() if until is None else int(until)
        rates: dict[int, float] = {}
        cursor = int(since)
        while cursor <= end:
            batch = self._call(retrying, self, self.client.fetch_funding_rate_history, market["symbol"], since=cursor)
            fresh = [r for r in batch or () if r.get("timestamp") is not None and cursor <= r["timestamp"] <= end]
            if not fresh:
                break
            rates.update({int(r["timestamp"]): float(r["fundingRate"]) for r in fresh})
            cursor = max(rates) + 1
        return FundingRates(rates)

    # --- streams --------------------------------------------------------------------------------

    def has_stream(self) -> bool:
        """True when this exchange streams market data (else feeds poll REST)."""
        spec = self.spec
        return spec.websocket is not None and spec.capabilities.public_stream

    def stream_bars(
        self, symbol: str, tf: Timeframe, callback: Callable[[Bar | ConnectionEvent], None]
    ) -> Callable[[], None]:
        """Deliver the stream's :class:`~realtrade_core.events.Bar` for every *closed* candle of
        ``symbol``, and a :class:`~realtrade_core.events.ConnectionEvent` (state ``CONNECTED``,
        ``DISCONNECTED`` or ``FAILED``, with its reason) for each change of the shared connection.

        ``callback`` runs on the WebSocket thread: only enqueue. Returns a function that
        unsubscribes. Feeds use this; :meth:`subscribe_bars` gives the same as plain rows.
        """
        ws_cls = self.spec.websocket
        stream = ws_cls.stream_name("bar", self.market(symbol), tf.name)
        with self._lock:
            self._bar_routes.setdefault((symbol, tf.name), []).append(callback)
            self._bar_streams[stream] = (symbol, tf.name)
            self._ensure_public_ws(stream).subscribe(stream)

        def unsubscribe() -> None:
            with self._lock:
                routes = self._bar_routes.get((symbol, tf.name), [])
                if callback in routes:
                    routes.remove(callback)
                if not routes and self._public_ws is not None:
                    self._bar_routes.pop((symbol, tf.name), None)
                    self._bar_streams.pop(stream, None)
                    self._public_ws.unsubscribe(stream)

        return unsubscribe

    def subscribe_bars(self, symbol: str, tf: Timeframe, callback: Callable[[tuple], None]) -> Callable[[], None]:
        """:meth:`stream_bars` as rows: ``("bar", [open_ms, o, h, l, c, v])`` for every *closed*
        candle of ``symbol`` (a REST candle's shape, as ``fetch_ohlcv`` gives it), and
        ``("connected", reason)``, ``("disconnected", reason)`` or ``("failed", reason)`` for the
        shared connection. Runs on the WebSocket thread; returns a function that unsubscribes."""

        def as_row(item: Bar | ConnectionEvent) -> None:
            if isinstance(item, ConnectionEvent):
                callback((_STATE_NAMES[item.state], item.reason))
            else:
                callback(("bar", [item.open_time, item.open, item.high, item.low, item.close, item.volume]))

        return self.stream_bars(symbol, tf, as_row)

    @property
    def quarantined(self) -> dict[str, int]:
        """Bad stream messages this store's connections dropped instead of delivering, by kind
        (``"bar"``, ``"trade"``, ``"order"``, ``"fill"``, ``"balance"``, ``"malformed"`` ...; see
        :attr:`realtrade_core.websocket.BaseWebSocket.quarantined`), since the store was made."""
        total = dict(self._quarantined_before)
        for ws in (self._public_ws, self._private_ws):
            for kind, count in (ws.quarantined if ws is not None else {}).items():
                total[kind] = total.get(kind, 0) + count
        return total

    def _ensure_public_ws(self, first: str) -> Any:
        if self._public_ws is None:
            from .websocket.contract import open_connection  # websocket-client only when streaming

            ws = open_connection(self.spec.websocket, self, private=False)
            ws.on("bar", self._on_bar)
            ws.on("subscribed", self._on_bar_subscribed)
            self._watch_connection(ws, self._on_bar_connection)
            ws.subscribe(first)  # with the first connection: one "connected" for its feed
            ws.start()
            self._public_ws = ws
        return self._public_ws

    def _on_bar_connection(self, event: ConnectionEvent) -> None:
        with self._lock:
            callbacks = [cb for routes in self._bar_routes.values() for cb in routes]
        for callback in callbacks:
            callback(event)

    def _on_bar_subscribed(self, event: Any) -> None:
        # A candle stream added to the ready connection is on: its feeds look for a candle that
        # closed between their backfill and now, as after "connected".
        with self._lock:
            keys = [self._bar_streams.get(stream) for stream in event.streams]
            callbacks = [cb for key in keys if key is not None for cb in self._bar_routes.get(key, ())]
        if callbacks:
            ready = ConnectionEvent(
                self.exchange or "", ConnectionState.CONNECTED, "subscribed", 0, int(time.time() * 1000)
            )
            for callback in callbacks:
                callback(ready)

    def _on_bar(self, bar: Bar) -> None:
        if not bar.closed:
            return  # the forming candle never becomes a bar
        routes = self._bar_routes.get((bar.symbol, bar.timeframe))
        if routes:
            for callback in tuple(routes):
                callback(bar)

    def subscribe_account(self, callback: Callable[[Any], None]) -> Callable[[], None]:
        """Deliver this account's OrderUpdate, Fill, BalanceUpdate (and, for perpetual contracts,
        PositionUpdate and FundingFee) events from the private stream.

        ``callback`` also gets ``("connected", reason)`` / ``("disconnected", reason)`` /
        ``("failed", reason)`` tuples. Runs on the WebSocket thread: only enqueue.
        """
        if not self._credentials:
            raise ConfigurationError(f"{self.exchange} {self.venue}: the private stream needs an API key and secret")
        with self._lock:
            self._account_routes.append(callback)
            if self._private_ws is None:
                from .websocket.contract import open_connection

                ws = open_connection(self.spec.websocket, self, private=True)
                for name in ("order", "fill", "balance", "position", "funding"):
                    ws.on(name, self._on_account_event)
                self._watch_connection(ws, self._on_account_connection)
                ws.start()
                self._private_ws = ws

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._account_routes:
                    self._account_routes.remove(callback)

        return unsubscribe

    def _on_account_event(self, event: Any) -> None:
        for callback in tuple(self._account_routes):
            callback(event)

    def _on_account_connection(self, event: ConnectionEvent) -> None:
        # The live session reads connection changes as (kind, reason) pairs.
        for callback in tuple(self._account_routes):
            callback((_STATE_NAMES[event.state], event.reason))

    def _watch_connection(self, ws: Any, relay: Callable[[ConnectionEvent], None]) -> None:
        """Report ``ws``'s connection changes as store events and to ``relay``."""

        def handler(event: ConnectionEvent) -> None:
            kind = _STATE_NAMES[event.state]
            self._emit({"failed": "error"}.get(kind, kind), f"{ws.name}: {event.reason}".rstrip(": "))
            relay(event)

        for name in ("connected", "disconnected", "max_reconnect"):
            ws.on(name, handler)

    # --- notifications ------------------------------------------------------------------------------

    def add_listener(self, callback: Callable[[StoreEvent], None]) -> None:
        self._listeners.append(callback)

    def _emit(self, kind: str, message: str = "") -> None:
        event = StoreEvent(self.exchange or "", self.venue, kind, message)
        self._notifications.append((f"{kind}: {message}" if message else kind, (event,), {}))
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception:
                log.exception("store listener raised")
        try:
            get_plugin_host().store_event(event)
        except Exception:
            log.exception("store_event hook failed")

    def put_notification(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._notifications.append((msg, args, kwargs))

    def get_notifications(self) -> list[tuple]:
        """backtrader's store interface: pending (msg, args, kwargs) for ``notify_store``."""
        out = []
        while self._notifications:
            out.append(self._notifications.popleft())
        return out

    # --- factories ------------------------------------------------------------------------------------

    def getdata(self, **kwargs: Any) -> Any:
        """A data feed of this exchange wired to this store (backtrader's ``store.getdata``).

        Checked here, before any thread starts: the setting names, the symbol (against the
        markets when the store has started or runs an in-process emulator, else its spelling),
        the timeframe against the exchange's, and the numbers (``backfill_bars`` >= 0 ...)."""
        feed_cls = self.spec.feed
        where = f"{self.exchange} {self.venue}"
        check_feed_arguments(kwargs, [*feed_cls.params._getkeys(), "name"], where)
        mismatch = market_type_mismatch(kwargs["dataname"], self.market_type, self.exchange)
        if mismatch:
            raise ConfigurationError(mismatch)
        self.timeframe(kwargs.get("timeframe", 5), kwargs.get("compression"))  # backtrader's default: Days
        if self.started and self._client is not None and self._client.markets:
            self.market(kwargs["dataname"])
        else:
            check_symbol(kwargs["dataname"], self._emulator_symbols(), f"the {self.exchange} emulator")
        return feed_cls(store=self, **kwargs)

    def getbroker(self, **kwargs: Any) -> Any:
        """A broker wired to this store (paper by default). Its settings, amounts and, for
        ``mode="live"``, the API keys are checked here, before anything starts."""
        broker_cls = self.spec.broker
        check_broker_arguments(
            kwargs,
            list(broker_cls.params._getkeys()),
            where=f"{self.exchange} {self.venue}",
            venue=self.venue,
            has_keys=bool(self._credentials),
            keys_from_emulator=self.venue == "emulator" and (self.emulator_url is None or self._attached is not None),
        )
        return broker_cls(store=self, **kwargs)

    def _emulator_symbols(self) -> list[str] | None:
        """The markets an in-process emulator of this store serves (None: not known before start)."""
        if self.venue != "emulator":
            return None
        if self._attached is not None:
            return list(self._attached.symbols)
        if self.emulator_url is not None:
            return None
        options = self._emulator_options
        default = DEFAULT_PERPETUAL_SYMBOLS if self.perpetual else DEFAULT_EMULATOR_SYMBOLS
        symbols = [str(s) for s in (options.get("symbols") or default)]
        symbols += [f"{m.base}/{m.quote}" for m in options.get("markets") or () if hasattr(m, "base")]
        return symbols

    def backtest_broker(self, symbols: str | Iterable[str], **kwargs: Any) -> Any:
        """A broker for a plain backtest that applies this exchange's rules for ``symbols``, as
        paper trading does: an :class:`~realtrade_core.backtest.ExchangeBackBroker` (``cash=``,
        ``commission=`` and BackBroker's parameters in ``kwargs``). One symbol's rules serve
        every data; with several, name each data after its symbol (``adddata(feed, name=...)``).
        Loads the markets (REST) if the store has not started."""
        from .backtest import ExchangeBackBroker
        from .rules import MarketRules

        names = [symbols] if isinstance(symbols, str) else list(symbols)
        if not names:
            raise ConfigurationError("backtest_broker needs a symbol, e.g. store.backtest_broker('BTC/USDT')")
        rules = {name: MarketRules.from_store(self, name) for name in names}
        return ExchangeBackBroker(rules=rules[names[0]] if len(names) == 1 else rules, **kwargs)


_ccxt_log = logging.getLogger("realtrade_core.ccxt")


def _ccxt_verbose_log(*args: Any) -> None:
    """ccxt's ``Exchange.log`` (what ``verbose=True`` prints) as a DEBUG record on
    ``realtrade_core.ccxt``, with keys, secrets and signatures scrubbed."""
    _ccxt_log.debug("%s", scrub(" ".join(str(a) for a in args)).strip())


def _get_json(url: str, timeout: float = 10.0) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except OSError as exc:
        raise ConfigurationError(
            f"cannot reach the emulator at {url}: {exc}. Start one with `realtrade emulator` "
            f"or leave emulator_url unset to run one in-process"
        ) from exc


_stores: dict[tuple, Store] = {}
_stores_lock = threading.Lock()


def get_store(
    name: str,
    venue: str = "emulator",
    *,
    api_key: str | None = None,
    secret: str | None = None,
    market_type: str = "spot",
    emulator_url: str | None = None,
    **options: Any,
) -> Store:
    """The store for (exchange, market type, account, venue), created on first use.

    ``venue`` is ``"emulator"`` (the default: an in-process emulator is started unless
    ``emulator_url`` points at a running one, or ``emulator=`` passes a running in-process
    :class:`~realtrade_core.emulator.server.Emulator`), ``"testnet"`` or ``"mainnet"``. Further
    keyword options (``emulator_options``, ``ccxt_config``) go to the store's constructor.

    ``emulator_url`` must be on loopback (127.0.0.0/8, ::1, ``localhost``) unless
    ``allow_remote_emulator=True``, and is never a host of the real exchange; the store builds
    the emulator's REST and stream URLs from it (see :mod:`realtrade_core.interlock`).
    """
    check_venue(venue)
    if bool(api_key) != bool(secret):
        given, missing = ("api_key", "secret") if api_key else ("secret", "api_key")
        raise ConfigurationError(f"{given} was given without {missing}: give both, or neither for public data only")
    spec = load_exchange(name)
    market_type = check_market_type(market_type, spec.capabilities, spec.name)  # "swap" and "perpetual": one store
    # The emulator object itself (not its id) is part of the key: ids are reused after collection.
    others = repr(sorted((k, v) for k, v in options.items() if k != "emulator"))
    # The secret's hash too: a corrected secret for the same key must not get the cached store.
    key = (spec.name, market_type, api_key, fingerprint(secret), venue, emulator_url, options.get("emulator"), others)
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = spec.store(
                venue=venue,
                api_key=api_key,
                secret=secret,
                market_type=market_type,
                emulator_url=emulator_url,
                spec=spec,
                **options,
            )
            _stores[key] = store
        return store


def clear_stores() -> None:
    """Stop and forget every cached store (tests, or a clean shutdown)."""
    with _stores_lock:
        stores = list(_stores.values())
        _stores.clear()
    for store in stores:
        store.stop()
