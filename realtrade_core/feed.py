"""Data: a backtrader live feed — REST history spliced into closed bars from the stream.

Threads. A per-feed worker thread (the *pump*) does all network work: it pages history from
REST, receives the stream's closed bars from the WebSocket thread through an inbox, fetches
missing bars from REST whenever it sees a gap or a reconnect, and puts finished bars and state
changes on an outbox. ``_load`` runs in cerebro's thread and only reads the outbox, waiting at
most ``qcheck`` seconds so resampling, timers and other feeds keep moving. Every bar is a closed
candle; the splice keeps a single "last delivered open time", so nothing is delivered twice and
every gap the exchange has data for is filled.

Bad candles. Stream messages are checked before they reach the feed (see
:attr:`realtrade_core.websocket.BaseWebSocket.quarantined`). The pump checks again what it is
about to deliver, REST history included: a candle with a missing, non-finite or negative price,
a high below its low, or an open time off the interval is dropped, counted in
:attr:`Data.quarantined` and logged once per kind, never delivered. A stream candle that would
open a gap is first checked against the exchange clock: a closed candle "from the future" (a
corrupted open time) would otherwise make every real candle after it look old and freeze the
feed.

Bar time. A bar is stamped with its candle's *close* time (open + length), in UTC. That is
backtrader's convention for resampling (the right edge), so ``resampledata`` of 1m bars yields
exactly the exchange's 5m candles.

Plugin contract (subclass :class:`Data`):

=====================  ========  ===========================================================
member                 required  meaning
=====================  ========  ===========================================================
``exchange``           yes       exchange name, equal to the plugin's entry-point name
=====================  ========  ===========================================================
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import backtrader as bt

from . import retry
from .contract import Contract
from .errors import ConfigurationError, RealtradeError
from .events import Bar, ConnectionEvent, ConnectionState
from .timeframes import Timeframe, parse_timeframe
from .validation import candle_problem

log = logging.getLogger(__name__)

_BAR, _STATE, _END, _ERROR, _WAKE = "bar", "state", "end", "error", "wake"

#: The ``price`` a feed's candles are made of.
PRICES = ("trade", "mark", "funding")


def _to_ms(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp() * 1000)


class Data(bt.feed.DataBase, Contract):
    """Base class of every exchange data feed.

    Parameters beyond backtrader's usual ones (``dataname``, ``timeframe``, ``compression``,
    ``fromdate``, ``todate``, ``sessionstart`` ...):

    - ``store``: the :class:`~realtrade_core.store.Store` (set by ``store.getdata``).
    - ``timeframe``: also accepts a string such as ``"1m"``, ``"4h"``, ``"1d"``.
    - ``historical`` (False): deliver ``fromdate``..``todate`` from REST, then end.
    - ``price`` ("trade"): the candles' price; ``"mark"`` gives a perpetual's mark-price candles
      (volume 0), ``"funding"`` its settled funding rates: one bar per settlement, stamped at
      the settlement time, open = high = low = close = the rate, volume 0 (the timeframe only
      names the feed). Both are history only (``historical=True``): they are not streamed live.
    - ``backfill_start`` (True): at start, deliver history before going live: from
      ``fromdate`` if given, else the last ``backfill_bars`` closed candles.
    - ``backfill_bars`` (100): how much history to start with when no ``fromdate`` is given.
    - ``backfill`` (True): after a reconnect, fetch the missed bars before live bars resume.
    - ``qcheck`` (0.5): seconds ``_load`` waits for a bar before yielding to cerebro; a state
      change of the feed, or the live broker's news (:meth:`wake`), ends the wait at once.
    - ``poll_interval`` (None): REST-only exchanges poll at this period (default: a tenth of
      the bar length, between 0.5 and 30 s).
    - ``gc_freeze`` (True): when the feed goes LIVE, the objects alive then (modules, markets,
      history) leave the cyclic garbage collector's reach (:func:`gc.freeze`): a full
      collection otherwise walks the whole heap and holds every thread for tens of ms (75 ms
      with 16 feeds on the emulator, 38 ms with the start frozen), which becomes the
      close -> ``next()`` tail. They are given back to the collector when the feed stops
      (:func:`gc.unfreeze`); False leaves the collector as it is.
    """

    _required = ("exchange",)
    exchange: ClassVar[str | None] = None

    params = (
        ("store", None),
        ("historical", False),
        ("price", "trade"),
        ("backfill_start", True),
        ("backfill_bars", 100),
        ("backfill", True),
        ("qcheck", 0.5),
        ("poll_interval", None),
        ("gc_freeze", True),
    )

    def __init__(self) -> None:
        if self.p.store is None:
            raise ConfigurationError("a realtrade data feed needs a store: use store.getdata(dataname=...)")
        tf_arg = self.p.timeframe
        if isinstance(tf_arg, str):
            self._tf = parse_timeframe(tf_arg)
        else:
            self._tf = parse_timeframe(tf_arg, self.p.compression)
        self.p.timeframe, self.p.compression = self._tf.bt_timeframe, self._tf.bt_compression
        if not self.p.dataname:
            raise ConfigurationError("dataname is required: the symbol, e.g. dataname='BTC/USDT'")
        self._check_price()
        self._outbox: queue.Queue = queue.Queue()
        self._pump: _BarPump | None = None
        self._last_pump: _BarPump | None = None
        self._last_close_ms: int | None = None
        #: True from the first LIVE bar on: orders made on history bars are never sent (the broker).
        self.live_started = False
        #: Set once this feed has a first bar to deliver, or can have none (it ended).
        self._first_ready = threading.Event()
        self._delivering = False  # the start gate has opened for this feed
        self._froze = False  # this feed froze the heap at LIVE (gc_freeze): thawed at stop
        self._wake_queued = False  # a wake() waits in the outbox: one is enough

    def _check_price(self) -> None:
        price = self.p.price
        if price not in PRICES:
            raise ConfigurationError(
                f"price={price!r} is not a feed price: use price='trade' (the default), 'mark' or 'funding'"
            )
        if price == "trade":
            return
        if not getattr(self.p.store, "perpetual", False):
            raise ConfigurationError(
                f"price={price!r} is for perpetual contracts and {self.p.dataname!r} is on a spot store: "
                "use get_store(..., market_type='perpetual') and a contract such as 'BTC/USDT:USDT'"
            )
        if not self.p.historical:
            raise ConfigurationError(
                f"a price={price!r} feed is history only (it is not streamed live): add historical=True "
                "with fromdate and todate, or use price='trade' for a live feed"
            )

    @property
    def tf(self) -> Timeframe:
        return self._tf

    @property
    def quarantined(self) -> dict[str, int]:
        """Candles this feed refused to deliver, by source: ``"history"`` (REST rows that are
        not valid candles) and ``"bar"`` (stream candles the exchange clock says have not closed).
        Bad stream messages never get this far: the connection counts those."""
        pump = self._pump or self._last_pump
        return dict(pump.quarantined) if pump is not None else {}

    def setenvironment(self, env: Any) -> None:
        # Wire the store into cerebro by instance so notify_store reaches the strategy.
        super().setenvironment(env)
        env.addstore(self.p.store)

    def islive(self) -> bool:
        return not self.p.historical

    def _timeoffset(self) -> timedelta:
        """The feed's clock minus ours, which backtrader's live resampler adds to the wall clock
        to decide whether a period is over. realtrade's clock here is the close time of the last
        bar delivered: an exchange's 5m candle is complete only when its last 1m candle has
        closed *and arrived*, so a period never closes on the wall clock ahead of its data (nor on
        an emulator clock running fast, standing still or lying in the past)."""
        if self._last_close_ms is None:
            return timedelta(milliseconds=self.p.store.time_offset_ms)
        return timedelta(milliseconds=self._last_close_ms - time.time() * 1000)

    @property
    def streaming(self) -> bool:
        """Whether candles come straight from the live stream now: history delivered, the
        exchange has answered the subscription and what closed meanwhile has been fetched. False
        before that, while a gap or a reconnect is being filled from REST, and when polling."""
        pump = self._pump
        return pump is not None and pump.direct

    def wake(self) -> None:
        """Have cerebro's loop run a pass now instead of at the end of its ``qcheck`` wait (any
        thread): the live broker calls it when an answer or a fill arrives, so that
        ``notify_order`` comes within milliseconds, not with the next bar or ``qcheck`` later."""
        if not self._wake_queued and not self.p.historical:
            self._wake_queued = True
            self._outbox.put((_WAKE, None))

    def haslivedata(self) -> bool:
        return not self.p.historical and not self._outbox.empty()

    def start(self) -> None:
        from . import runguard

        runguard.guard(bt.metabase.findowner(self, bt.Cerebro))  # an exception or Ctrl-C still stops us
        super().start()
        self._laststatus = None  # so the first CONNECTED reaches notify_data too
        store = self.p.store
        store.start()  # network I/O belongs here or in the pump, never in _load
        self._market = store.market(self.p.dataname)
        self._symbol = self._market["symbol"]
        self._tf = store.timeframe(self._tf.name)
        self._bar_ms = 0 if self.p.price == "funding" else self._tf.ms  # a funding bar is its settlement
        self._pump = _BarPump(self)
        self._pump.start()

    def stop(self) -> None:
        if self._froze:  # the session is over: its objects may be collected again
            self._froze = False
            gc.unfreeze()
        if self._pump is not None:
            self._pump.stop()
            self._last_pump = self._pump  # its counters stay readable
            self._pump = None
        super().stop()

    def _notify_state(self, state: int) -> None:
        self.put_notification(state)  # backtrader drops a repeat of the last status itself

    def _siblings(self) -> list[Data]:
        """The other live realtrade feeds of this cerebro."""
        env = getattr(self, "_env", None)
        return [d for d in getattr(env, "datas", ()) if isinstance(d, Data) and d is not self and not d.p.historical]

    def _gate_open(self) -> bool:
        """A live cerebro starts every realtrade feed together, as a backtest has its datas: no
        feed delivers its first bar before every other has one to deliver (or has ended).
        Otherwise a feed whose history came first runs ahead, cerebro's strategy sees its first
        bars alone, and a strategy of several datas acts on other bars than in its backtest."""
        if self._delivering:
            return True
        for other in self._siblings():
            if not other._first_ready.wait(timeout=self._qcheck):
                return False
        self._delivering = True
        return True

    def _load(self) -> bool | None:
        if not self.p.historical and not self._gate_open():
            return None
        while True:
            try:
                if self.p.historical:
                    kind, payload = self._outbox.get()
                else:
                    kind, payload = self._outbox.get(timeout=self._qcheck)
            except queue.Empty:
                return None
            if kind == _WAKE:
                self._wake_queued = False  # before cerebro's broker pass reads what woke it
                if self._outbox.empty():
                    return None  # no bar: cerebro still runs its broker and notifications
                continue
            if kind == _BAR:
                open_ms, o, h, low, c, v = payload[:6]
                self._last_close_ms = int(open_ms) + self._bar_ms
                close_time = datetime.fromtimestamp(self._last_close_ms / 1000, tz=timezone.utc)
                self.lines.datetime[0] = bt.date2num(close_time.replace(tzinfo=None))
                self.lines.open[0] = o
                self.lines.high[0] = h
                self.lines.low[0] = low
                self.lines.close[0] = c
                self.lines.volume[0] = v
                self.lines.openinterest[0] = 0.0
                return True
            if kind == _STATE:
                if payload == self.LIVE:
                    if not self.live_started and self.p.gc_freeze:
                        gc.freeze()  # O(1): the start's objects out of every later collection
                        self._froze = True
                    self.live_started = True
                self._notify_state(payload)
                if not self.p.historical and self._outbox.empty():
                    # cerebro's next pass tells the strategy without waiting for a bar (a history
                    # feed is preloaded: there, no bar yet must not read as its end)
                    return None
                continue
            if kind == _ERROR:
                log.error("%s %s feed stopped: %s", self.exchange, self.p.dataname, payload)
                self.p.store.put_notification(f"data error: {payload}")
                self._notify_state(self.DISCONNECTED)
            return False  # _END or _ERROR


class _BarPump(threading.Thread):
    """The feed's network side: history, the live splice and the catch-up after reconnects."""

    def __init__(self, feed: Data) -> None:
        super().__init__(name=f"realtrade-feed-{feed.p.dataname}-{feed.tf.name}", daemon=True)
        self.feed = feed
        self.store = feed.p.store
        self.symbol: str = feed._symbol
        self.tf: Timeframe = feed.tf
        self.out = feed._outbox
        # set at the first bar to deliver, or at the end: the start gate of the sibling feeds
        self.first_ready: threading.Event = getattr(feed, "_first_ready", None) or threading.Event()
        self.inbox: queue.Queue = queue.Queue()
        self.stopping = threading.Event()
        self.last_open: int | None = None
        self._unsubscribe = None
        self.quarantined: dict[str, int] = {}
        self.current: int | None = None  # the last data state put on the outbox
        self.delayed = False  # a REST retry turned LIVE into DELAYED: LIVE again once it succeeds
        # The direct path: while the splice is idle (live, nothing queued, no catch-up owed), the
        # WebSocket thread delivers the next contiguous closed candle itself, without waking this
        # thread. ``pending`` counts the stream items queued for (or being handled by) this
        # thread; the WebSocket thread may deliver only when it is 0, so the order holds.
        self.splice = threading.Lock()
        self.pending = 0
        self.direct = False

    def stop(self) -> None:
        self.stopping.set()
        with self.splice:
            self.direct = False
        self.inbox.put(None)
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=10)

    # --- delivery -------------------------------------------------------------------------------

    def deliver(self, row: list, source: str = "history") -> None:
        problem = self.problem(row)
        if problem is not None:
            self.quarantine(source, problem, row)
            return
        if self.last_open is not None and row[0] <= self.last_open:
            return  # already delivered: the splice never repeats a bar
        self.last_open = row[0]
        self.out.put((_BAR, tuple(float(x) for x in row[:6])))
        self.first_ready.set()

    def problem(self, row: Any, now_ms: int | None = None) -> str | None:
        """What is wrong with a candle row ``[open_ms, o, h, l, c, v, ...]``, or None."""
        if not isinstance(row, (list, tuple)) or len(row) < 6:
            return "a candle is [open time, open, high, low, close, volume]"
        return candle_problem(self.tf.name, *row[:6], closed=True, now_ms=now_ms)

    def quarantine(self, source: str, problem: str, row: Any) -> None:
        first = source not in self.quarantined
        self.quarantined[source] = self.quarantined.get(source, 0) + 1
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "%s %s: dropped a bad %s candle (%s): %.200r",
            self.symbol, self.tf.name, "REST" if source == "history" else "stream", problem, row,
        )  # fmt: skip

    def state(self, state: int) -> None:
        self.current = state
        if state == self.feed.LIVE:
            self.delayed = False
        self.out.put((_STATE, state))

    def retry_wait(self, error: BaseException, seconds: float) -> None:
        """A REST call failed and waits to be retried (:mod:`realtrade_core.retry`): a live feed
        reports DELAYED (before its first LIVE bar it is DELAYED already) until it succeeds."""
        if self.current == self.feed.LIVE:
            self.delayed = True
            self.state(self.feed.DELAYED)
            self.store.put_notification(
                f"data {self.symbol} {self.tf.name} delayed: {retry.describe(error, self.store)}; retrying in "
                f"{seconds:.1f} s"
            )

    def catch_up(self, until: int | None = None) -> None:
        """Fetch and deliver closed candles after the last delivered one (up to ``until``)."""
        since = self.last_open + self.tf.ms if self.last_open is not None else self.start_ms()
        for row in self.store.fetch_closed_candles(self.symbol, self.tf, since, until):
            self.deliver(row)
        if self.delayed:
            self.state(self.feed.LIVE)  # the REST call that made us wait has succeeded

    def start_ms(self) -> int:
        p = self.feed.p
        if p.fromdate is not None and p.fromdate != datetime.min:
            return _to_ms(p.fromdate)
        now = self.store.server_time()
        return (now // self.tf.ms) * self.tf.ms - p.backfill_bars * self.tf.ms

    # --- main loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        # Every REST call of this thread retries transient errors (timeouts, 5xx, rate limits)
        # until it succeeds or the feed stops: only a permanent error ends the feed.
        try:
            with retry.context(stopping=self.stopping, waiting=self.retry_wait, patience=None):
                if self.feed.p.historical:
                    self.run_historical()
                else:
                    self.run_live()
        except RealtradeError as exc:
            if not self.stopping.is_set():
                self.out.put((_ERROR, str(exc)))
        except Exception as exc:  # a bug must end the feed visibly, not hang cerebro
            log.exception("feed worker crashed")
            self.out.put((_ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            self.first_ready.set()  # ended: the other feeds must not wait for its first bar

    def run_historical(self) -> None:
        p = self.feed.p
        if p.price == "funding":
            self.run_funding()
            return
        until = None
        if p.todate is not None and p.todate != datetime.max:
            until = _to_ms(p.todate) - self.tf.ms  # the last candle must close by todate
        rows = self.store.fetch_closed_candles(self.symbol, self.tf, self.start_ms(), until, price=p.price)
        for row in rows:
            if self.stopping.is_set():
                return
            self.deliver(row)
        self.out.put((_END, None))

    def run_funding(self) -> None:
        """The funding rates settled from ``fromdate`` to ``todate``: a bar per settlement."""
        p = self.feed.p
        start = self.start_ms()
        end = _to_ms(p.todate) if p.todate is not None and p.todate != datetime.max else self.store.exchange_ms()
        for when, rate in self.store.funding_rates(self.symbol, start, end).due(start, end + 1):
            if self.stopping.is_set():
                return
            self.out.put((_BAR, (float(when), rate, rate, rate, rate, 0.0)))  # a rate may be negative
            self.first_ready.set()
        self.out.put((_END, None))

    def run_live(self) -> None:
        feed = self.feed
        self.state(feed.CONNECTED)
        streaming = self.store.has_stream()
        if streaming:
            # Subscribe before the backfill so a candle closing meanwhile waits in the inbox.
            self._unsubscribe = self.store.stream_bars(self.symbol, self.tf, self.on_stream)
        if feed.p.backfill_start:
            self.state(feed.DELAYED)
            self.catch_up()
        elif self.last_open is None:
            now = self.store.server_time()
            self.last_open = (now // self.tf.ms) * self.tf.ms - 2 * self.tf.ms
        self.state(feed.LIVE)
        if streaming:
            self.loop_stream()
        else:
            self.loop_poll()

    def on_stream(self, item: Bar | ConnectionEvent) -> None:
        """Called in the WebSocket thread. The next closed candle of an idle live splice is
        delivered here; anything else (a gap, a connection change, a clock re-measure due, a
        backlog) is queued for the worker, which may call REST."""
        with self.splice:
            if (
                self.direct
                and not self.pending
                and type(item) is Bar
                and self.last_open is not None
                and item.open_time == self.last_open + self.tf.ms
                and not self.store.time_sync_due()
            ):
                self.deliver([item.open_time, item.open, item.high, item.low, item.close, item.volume], "bar")
                return
            self.pending += 1
        self.inbox.put(item)

    def _handled(self, direct: bool) -> None:
        """The worker is done with one queued stream item; ``direct`` says whether the splice is
        idle again (no catch-up owed, the connection up)."""
        with self.splice:
            self.pending = max(0, self.pending - 1)  # an item put on the inbox directly is not counted
            self.direct = direct and not self.stopping.is_set()

    def loop_stream(self) -> None:
        broken = False
        check_gap = False  # look for a candle the stream missed once the queued bars are in
        while not self.stopping.is_set():
            if check_gap:
                try:
                    item = self.inbox.get_nowait()
                except queue.Empty:
                    check_gap = False
                    self.catch_up()  # REST only if a closed candle is still missing
                    with self.splice:
                        self.direct = not broken and not self.stopping.is_set()
                    continue
            else:
                item = self.inbox.get()
            if item is None:
                continue
            after = None
            try:
                after = self.handle(item, broken, check_gap)
            finally:
                self._handled(after is not None and after == (False, False))
            if after is None:
                return  # the stream failed for good: the feed has ended
            broken, check_gap = after

    def handle(self, item: Bar | ConnectionEvent, broken: bool, check_gap: bool) -> tuple[bool, bool] | None:
        """One queued stream item: a candle spliced (a gap filled from REST first) or a
        connection change. Returns the new (broken, check_gap), None once the feed has ended."""
        feed = self.feed
        self.store.refresh_time()
        if isinstance(item, Bar):
            # From here on a candle is a row, as REST gives them: the splice merges both.
            row = [item.open_time, item.open, item.high, item.low, item.close, item.volume]
            if self.last_open is not None and row[0] > self.last_open + self.tf.ms:
                # A gap. Unless the candle lies in the future (then it is the bad one, and
                # delivering it would make every real candle after it look old), fill the
                # gap from REST first.
                problem = self.problem(row, now_ms=self.store.server_time())
                if problem is not None:
                    self.quarantine("bar", problem, row)
                    return broken, check_gap
                self.catch_up(until=row[0] - self.tf.ms)
            self.deliver(row, "bar")
        elif item.state is ConnectionState.DISCONNECTED:
            broken = True
            self.state(feed.DISCONNECTED)
        elif item.state is ConnectionState.CONNECTED and broken:
            broken = False
            if feed.p.backfill:
                self.state(feed.DELAYED)
                self.catch_up()
            self.state(feed.LIVE)
        elif item.state is ConnectionState.CONNECTED and self.last_open is not None:
            # The first connection is ready (subscribed) only now: a candle that closed
            # after the backfill but before the subscription took effect is fetched. The
            # stream bars queued meanwhile go first: they usually leave nothing to fetch,
            # and a REST call (paced by ccxt's throttle, 100 ms on Bybit) would hold them.
            check_gap = True
        elif item.state is ConnectionState.FAILED:
            self.state(feed.CONNBROKEN)
            self.out.put((_END, None))
            return None
        return broken, check_gap

    def loop_poll(self) -> None:
        interval = self.feed.p.poll_interval
        if interval is None:
            interval = min(30.0, max(0.5, self.tf.ms / 1000 / 10))
        while not self.stopping.wait(interval):
            self.store.refresh_time()
            self.catch_up()  # transient errors are retried inside; a permanent one ends the feed
