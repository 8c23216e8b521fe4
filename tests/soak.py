"""A seeded fault soak: a strategy trades live on the emulator while faults are injected, and
afterwards the strategy's ledger, orders and balances must equal the exchange's.

    .venv/bin/python tests/soak.py --minutes 10 --seed 7        # both exchanges, today's and 2021 dates
    .venv/bin/python tests/soak.py --exchange bybit --candles 80 --seed 3 --old-dates

A live broker (real ccxt, real sockets, real threads) trades :class:`SoakStrategy` on an
in-process emulator with a manual clock: market buys, limits with ``valid=``, brackets (market
and limit entries) and market and limit exits, with a cancel now and then, all drawn from the
seed. Before each candle a fault may be injected, drawn from the same seed (:func:`plan`):
private and public stream drops, stalls, 429 and 418 with Retry-After, 5xx on submits, cancels,
lookups, balance and candle reads, order placements executed but never answered, slow answers,
clock shifts, malformed frames, and frames the exchange sends corrupted or twice. The driver
sometimes waits for the broker's answers before the next candle and sometimes does not, so
fills race acknowledgements and cancels race fills.

Then the faults stop, a few clean candles pass, the broker is given time to catch up (bounded),
cerebro stops and :func:`verify` compares, exactly:

- the bars the strategy saw with the exchange's candles: each once, in order, none missing;
- the exchange's orders of the account with the broker's: no client order id twice, none the
  broker does not know, none it sent missing, the same open orders, the same filled amounts;
- the ledger with the account, which started with exactly the ledger's cash (USDT 10,000, no
  BTC): cash == the USDT total, the position's coins (``SymbolBook.held``) plus the lot-step
  dust the broker reported == the BTC total, to the exchange's last decimal; the ledger never
  shrank to the account (nobody moved funds by hand); the balances the broker reports ==
  the exchange's;
- every fill of the account recorded once in the broker's journal.

The schedule depends only on the seed, so a failing run is replayed with the same ``--seed``
(the threads' timing still varies from run to run; the faults and the strategy's choices do not).
Everything printed is also in the returned :class:`SoakReport`.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import logging
import math
import random
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import backtrader as bt

from realtrade_core.emulator.faults import HttpFault
from realtrade_core.emulator.replay import default_market_spec, synthetic_candles
from realtrade_core.emulator.server import Emulator
from realtrade_core.journal import Journal
from realtrade_core.live.model import bar_close_ms
from realtrade_core.plugins import load_exchange

log = logging.getLogger("realtrade.soak")

EXCHANGES = ("binance", "bybit")
SYMBOL = "BTC/USDT"
MARKET_ID = "BTCUSDT"
MINUTE = 60_000
HISTORY = 30  # candles before the replay starts (the feed backfills a few of them)
CASH = Decimal(10_000)
JAN_2021 = 1_609_459_200_000  # the old dates a replay of 2021 candles runs at
START_PRICE = Decimal(30_000)
BAR_WAIT = 3.0  # how long the driver waits for a bar before the next step reveals it as a gap
ANSWER_WAIT = 12.0  # how long it may wait for the broker's answers before the next candle
# A lost create is looked up until this many seconds after it was sent before it counts as absent
# (default: the exchange's recvWindow + 2 s = 7 s). It must exceed the longest an injected slow
# answer holds a request before the exchange executes it (2.5 s); shorter keeps the runs short.
UNKNOWN_WINDOW = 4.0
SETTLE_CANDLES = 3  # clean candles after the faults stop
SETTLE_MORE = 20  # more clean candles, at most, while the broker catches up
SETTLE_WAIT = 90.0  # how long the broker has to catch up before the comparison
SETTLE_CAP = 180.0  # the whole wind-down, at most: a broker that cannot catch up fails, it does not hang

# The REST paths faults aim at: (path prefix, method) per purpose and exchange.
PATHS: dict[str, dict[str, list[tuple[str, str]]]] = {
    "binance": {
        "submit": [("/api/v3/order", "POST"), ("/api/v3/orderList/oco", "POST")],
        "cancel": [("/api/v3/order", "DELETE"), ("/api/v3/orderList", "DELETE")],
        "lookup": [("/api/v3/order", "GET"), ("/api/v3/openOrders", "GET"), ("/api/v3/myTrades", "GET")],
        "balance": [("/api/v3/account", "GET")],
        "candles": [("/api/v3/klines", "GET")],
    },
    "bybit": {
        "submit": [("/v5/order/create", "POST")],
        "cancel": [("/v5/order/cancel", "POST")],
        "lookup": [("/v5/order/realtime", "GET"), ("/v5/order/history", "GET"), ("/v5/execution/list", "GET")],
        "balance": [("/v5/account/wallet-balance", "GET")],
        "candles": [("/v5/market/kline", "GET")],
    },
}

#: fault kind -> weight in the schedule
FAULT_WEIGHTS: dict[str, int] = {
    "drop_private": 3,
    "drop_public": 3,
    "stall": 3,
    "http_429": 2,
    "http_418": 1,
    "submit_5xx": 3,
    "cancel_5xx": 2,
    "lookup_5xx": 2,
    "balance_5xx": 2,
    "candles_5xx": 2,
    "submit_lost": 3,
    "slow": 2,
    "clock_shift": 2,
    "malformed_private": 1,
    "malformed_public": 1,
    "mutated_private": 3,
    "mutated_kline": 2,
    "repeated_private": 2,
    "repeated_kline": 1,
}


# --- the schedule ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One fault to inject before candle ``step``; ``after_step`` injects it once the step is
    done (a drop or stall then races the candle's frames)."""

    step: int
    kind: str
    params: tuple[tuple[str, Any], ...] = ()
    after_step: bool = False

    def param(self, name: str, default: Any = None) -> Any:
        return dict(self.params).get(name, default)

    def describe(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params)
        return f"{self.kind}({args})" if args else self.kind


def plan(seed: int, steps: int, exchange: str, rate: float = 0.6) -> list[Fault]:
    """The faults of a run: the same seed, steps and exchange always give the same list."""
    rng = random.Random(f"faults-{seed}-{exchange}")
    kinds = sorted(FAULT_WEIGHTS)
    weights = [FAULT_WEIGHTS[k] for k in kinds]
    paths = PATHS[exchange]
    faults: list[Fault] = []
    for step in range(steps):
        if rng.random() >= rate:
            continue
        for _ in range(1 + (rng.random() < 0.25)):  # now and then two at once
            kind = rng.choices(kinds, weights)[0]
            params: dict[str, Any] = {}
            if kind in ("http_429", "http_418"):
                purpose = rng.choice(sorted(paths))
                params = {"path": rng.choice(paths[purpose]), "retry_after": rng.choice((1, 1, 2))}
            elif kind.endswith("_5xx"):
                params = {"path": rng.choice(paths[kind[: -len("_5xx")]]), "status": rng.choice((500, 502, 503, 504)),
                          "count": rng.choice((1, 1, 2))}  # fmt: skip
            elif kind == "submit_lost":
                params = {"count": rng.choice((1, 1, 2))}
            elif kind == "stall":
                params = {"seconds": round(rng.uniform(0.3, 2.5), 2)}
            elif kind == "slow":
                params = {"ms": rng.choice((150, 400, 900, 2500)), "candles": rng.randint(1, 3)}
            elif kind == "clock_shift":
                params = {"ms": rng.choice((-9000, -3000, -700, 700, 3000, 9000)), "candles": rng.randint(1, 4)}
            elif kind.startswith(("mutated", "repeated")):
                params = {"count": rng.choice((1, 1, 2))}
            after = kind in ("drop_private", "drop_public", "stall", "malformed_public") and rng.random() < 0.5
            faults.append(Fault(step, kind, tuple(sorted(params.items())), after))
    return faults


# --- frames the exchange corrupts or repeats ---------------------------------------------------------


def _numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, str) and value:
        try:
            return math.isfinite(float(value))
        except ValueError:
            return False
    return False


def _leaves(node: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) holding a number or a numeric string, depth first."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        if _numeric(value):
            out.append((node, key))
        else:
            _leaves(value, out)
    return out


def corrupt(frame: dict | list, rng: random.Random) -> tuple[dict | list, str]:
    """``frame`` with one number made plainly wrong (NaN, negative, an object, or gone), and
    what was done. Only numbers are touched, and only so that no valid value results: a client
    can tell each from a good frame, so it must refuse it, never act on it."""
    leaves = _leaves(frame, [])
    if not leaves:
        return frame, "nothing to corrupt"
    container, key = rng.choice(leaves)
    how = rng.choice(("nan", "negative", "object", "missing"))
    if how == "missing" and isinstance(container, dict):
        del container[key]
    elif how == "nan":
        container[key] = "NaN"
    elif how == "object":
        container[key] = {"bad": True}
    else:
        container[key] = "-1" if isinstance(container[key], str) else -1
        how = "negative"
    return frame, f"{key}: {how}"


def closed_candle_frame(frame: Any) -> bool:
    """Whether a public frame carries a closed candle (Binance kline ``x``, Bybit ``confirm``)."""
    if not isinstance(frame, dict):
        return False
    data = frame.get("data", frame)
    if isinstance(data, dict) and isinstance(data.get("k"), dict):
        return data["k"].get("x") is True
    if str(frame.get("topic", "")).startswith("kline") and isinstance(data, list) and data:
        return isinstance(data[0], dict) and data[0].get("confirm") is True
    return False


class FrameTamper:
    """Corrupts or repeats the next frames the emulator publishes: those of the account (any
    private message) or closed candles. Installed on the emulator's hub; thread-safe."""

    def __init__(self, emulator: Emulator, rng: random.Random) -> None:
        self.hub = emulator.hub
        self.rng = rng
        self._publish = emulator.hub.publish
        self.lock = threading.Lock()
        self.armed: Counter[tuple[str, str]] = Counter()  # (target, action) -> frames to go
        self.done: Counter[str] = Counter()  # fault kind -> frames tampered with
        self.details: list[str] = []
        emulator.hub.publish = self.publish  # the dialects publish through the hub instance

    def arm(self, target: str, action: str, count: int) -> None:
        with self.lock:
            self.armed[(target, action)] += count

    def disarm(self) -> None:
        with self.lock:
            self.armed.clear()

    def publish(self, topic: str, payload: Any, account: str | None = None) -> None:
        if not self.armed or not self.hub.subscribers(topic):
            self._publish(topic, payload, account)
            return
        target = "private" if account is not None else "kline"
        try:
            frame = json.loads(payload) if isinstance(payload, str) else json.loads(json.dumps(payload))
        except ValueError:
            self._publish(topic, payload, account)
            return
        if target == "kline" and not closed_candle_frame(frame):
            self._publish(topic, payload, account)
            return
        with self.lock:
            action = next((a for (t, a), n in self.armed.items() if t == target and n > 0), None)
            if action is not None:
                self.armed[(target, action)] -= 1
                if not self.armed[(target, action)]:
                    del self.armed[(target, action)]
                rng_state = self.rng.random()
        if action is None:
            self._publish(topic, payload, account)
            return
        kind = f"{action}_{target}"
        self.done[kind] += 1
        if action == "repeated":
            self._publish(topic, payload, account)
            self._publish(topic, payload, account)
            self.details.append(f"{kind} on {topic}")
            return
        bad, what = corrupt(frame, random.Random(rng_state))
        self.details.append(f"{kind} on {topic}: {what}")
        self._publish(topic, json.dumps(bad), account)


# --- the strategy ------------------------------------------------------------------------------------


class SoakStrategy(bt.Strategy):
    """Trades at random, from its seed: market, limit (``valid=``) and bracket entries, market
    and limit exits, a cancel now and then. Records every bar and notification."""

    params = (("seed", 0), ("quiet", None))

    def __init__(self) -> None:
        self.rng = random.Random(f"strategy-{self.p.seed}")
        self.bars: list[tuple[int, float, float, float, float, float]] = []  # one per next() call
        self.live = False
        self.history_bars = 0
        self.made: list[bt.Order] = []
        self.statuses: dict[int, list[str]] = {}
        self.store_messages: list[str] = []
        self.trades_closed = 0
        self.actions: Counter[str] = Counter()

    def notify_data(self, data, status, *args, **kwargs) -> None:
        if data._getstatusname(status) == "LIVE" and not self.live:
            self.live = True
            self.history_bars = len(self.bars)  # the bars before are the backfilled history

    def notify_order(self, order) -> None:
        self.statuses.setdefault(order.ref, []).append(order.getstatusname())

    def notify_trade(self, trade) -> None:
        if trade.isclosed:
            self.trades_closed += 1

    def notify_store(self, msg, *args, **kwargs) -> None:
        self.store_messages.append(str(msg))

    def next(self) -> None:
        d = self.data
        self.bars.append((bar_close_ms(d) - MINUTE, d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0]))
        if self.live and not (self.p.quiet is not None and self.p.quiet.is_set()):
            self.act()

    def _order(self, what: str, order: bt.Order | list | None) -> None:
        self.actions[what] += 1
        for o in order if isinstance(order, list) else [order]:
            if o is not None:
                self.made.append(o)

    def act(self) -> None:
        rng = self.rng
        price = self.data.close[0]
        alive = [o for o in self.made if o.alive()]
        if alive:
            if rng.random() < 0.12:
                self.cancel(rng.choice(alive))
                self.actions["cancel"] += 1
            return
        size = rng.choice((0.002, 0.004, 0.0065, 0.01, 0.013))
        valid = timedelta(minutes=rng.randint(1, 4))
        away = rng.uniform(0.0005, 0.004)
        r = rng.random()
        if self.position.size <= 0:
            if r < 0.25:
                self._order("market buy", self.buy(size=size))
            elif r < 0.5:
                limit = price * (1 - rng.uniform(0, 0.002))
                self._order("limit buy", self.buy(size=size, exectype=bt.Order.Limit, price=limit, valid=valid))
            elif r < 0.7:
                self._order(
                    "bracket (market entry)",
                    self.buy_bracket(
                        size=size, exectype=bt.Order.Market, limitprice=price * (1 + away), stopprice=price * (1 - away)
                    ),
                )
            elif r < 0.85:
                entry = price * (1 - rng.uniform(0, 0.0015))
                self._order("bracket (limit entry)", self.buy_bracket(
                    size=size, price=entry, exectype=bt.Order.Limit, valid=valid,
                    limitprice=entry * (1 + away), stopprice=entry * (1 - away)))  # fmt: skip
        else:
            if r < 0.35:
                self._order("market exit", self.close())
            elif r < 0.65:
                limit = price * (1 + rng.uniform(0, 0.002))
                self._order("limit exit", self.sell(size=self.position.size, exectype=bt.Order.Limit, price=limit,
                                                    valid=valid))  # fmt: skip


# --- the run -----------------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class SoakReport:
    exchange: str
    seed: int
    old_dates: bool
    steps: int = 0
    settle_candles: int = 0
    seconds: float = 0.0
    faults: Counter = field(default_factory=Counter)  # kind -> injected (took effect)
    armed_unused: Counter = field(default_factory=Counter)  # kind -> armed but never hit
    figures: dict[str, Any] = field(default_factory=dict)
    account: list[tuple[str, str, str, str]] = field(default_factory=list)  # (what, ledger/broker, exchange, diff)
    checks: list[Check] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def table(self) -> str:
        dates = "2021 replay (old dates)" if self.old_dates else "today's dates"
        lines = [f"fault soak: {self.exchange}, seed {self.seed}, {dates}, {self.steps} candles with faults, "
                 f"{self.seconds:.1f} s"]  # fmt: skip
        lines.append("  faults injected (kind: count)")
        for kind in sorted(set(self.faults) | set(self.armed_unused)):
            unused = f"   ({self.armed_unused[kind]} armed, never hit)" if self.armed_unused[kind] else ""
            lines.append(f"    {kind:<20} {self.faults[kind]:>5}{unused}")
        lines.append(f"    {'total':<20} {sum(self.faults.values()):>5}")
        lines.append("  figures")
        for key, value in self.figures.items():
            lines.append(f"    {key:<34} {value}")
        lines.append("  account          broker/ledger            exchange                 diff")
        for what, mine, theirs, diff in self.account:
            lines.append(f"    {what:<14} {mine:<24} {theirs:<24} {diff}")
        lines.append("  checks")
        for c in self.checks:
            lines.append(f"    [{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}")
        lines.append(f"  result: {'PASS' if self.ok else 'FAIL'} (replay: --exchange {self.exchange} --seed "
                     f"{self.seed}{' --old-dates' if self.old_dates else ''})")  # fmt: skip
        return "\n".join(lines)


def write_candles(path: Path, start_ms: int, count: int, seed: int) -> None:
    """A seeded 1-minute market as a CSV the emulator replays (``realtrade emulator --data``)."""
    rows = synthetic_candles(seed=seed, count=count, interval_ms=MINUTE, start_ms=start_ms, start_price=START_PRICE)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "open", "high", "low", "close", "volume"])
        for c in rows:
            writer.writerow([c.open_time, c.open, c.high, c.low, c.close, c.volume])


def wait_for(predicate: Callable[[], Any], timeout: float) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes (bounded progress, never an assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return True
        except (RuntimeError, KeyError, IndexError):  # read while cerebro's thread changes it: ask again
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


class _Trail(logging.Handler):
    """The last log lines, formatted, in memory."""

    def __init__(self, keep: int = 2000) -> None:
        super().__init__(logging.DEBUG)
        self.lines: deque[str] = deque(maxlen=keep)
        self.setFormatter(logging.Formatter("%(relativeCreated)8.0f %(levelname).1s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record)[:400])
        except Exception:  # a log line must never break the run
            pass


class Soak:
    """One soak run on one exchange; :meth:`run` returns the :class:`SoakReport`."""

    def __init__(self, exchange: str, seed: int, *, candles: int | None = 40, minutes: float | None = None,
                 old_dates: bool = False, workdir: str | Path | None = None,
                 out: Callable[[str], None] | None = None) -> None:  # fmt: skip
        if candles is None and minutes is None:
            raise ValueError("give the soak a length: candles=N or minutes=M")
        self.exchange = exchange
        self.seed = seed
        self.candles = candles
        self.minutes = minutes
        self.old_dates = old_dates
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="realtrade-soak-"))
        self.out = out or (lambda line: None)
        self.report = SoakReport(exchange, seed, old_dates)
        self.rng = random.Random(f"driver-{seed}-{exchange}")
        self.quiet = threading.Event()
        self.cerebro_error: BaseException | None = None
        self.cerebro_done = threading.Event()
        self.http: list[tuple[str, HttpFault, int]] = []  # (kind, record, count armed)
        self.lost_armed = 0
        self.until: dict[str, int] = {}  # "slow" / "clock_shift" -> step at which it ends

    # --- setup ---------------------------------------------------------------------------------

    def _emulator(self) -> Emulator:
        steps = self.candles if self.candles is not None else int(self.minutes * 60 * 12)  # ample for any pace
        count = HISTORY + steps + SETTLE_CANDLES + 20
        start = JAN_2021 if self.old_dates else (int(time.time() * 1000) // MINUTE) * MINUTE - HISTORY * MINUTE
        path = self.workdir / f"{self.exchange}-{'2021' if self.old_dates else 'today'}.csv"
        write_candles(path, start, count, self.seed)
        # Resting limits fill at most 0.004 BTC per price step: partial fills on the way.
        spec = replace(default_market_spec(MARKET_ID, "BTC", "USDT", START_PRICE), max_fill_per_step=Decimal("0.004"))
        return Emulator(self.exchange, symbols=(SYMBOL,), data=str(path), speed=None, history=HISTORY,
                        balances={"USDT": CASH}, markets=[spec])  # fmt: skip

    def _store(self, emulator: Emulator) -> Any:
        spec = load_exchange(self.exchange)
        # ccxt gives up on an answer after 2 s: a lost answer is found out quickly.
        return spec.store(venue="emulator", emulator=emulator, spec=spec, ccxt_config={"timeout": 2000})

    # --- faults --------------------------------------------------------------------------------

    def inject(self, fault: Fault, emu: Emulator, tamper: FrameTamper, step: int) -> None:
        kind, p = fault.kind, fault.param
        faults = self.report.faults
        if kind in ("drop_private", "drop_public"):
            if emu.drop_connections(private=kind == "drop_private"):
                faults[kind] += 1
        elif kind == "stall":
            emu.stall_connections(p("seconds"))
            faults[kind] += 1
        elif kind in ("malformed_private", "malformed_public"):
            if emu.send_malformed(private=kind == "malformed_private"):
                faults[kind] += 1
        elif kind in ("http_429", "http_418"):
            path, method = p("path")
            status = 429 if kind == "http_429" else 418
            self.http.append((kind, emu.fail_http(status, 1, p("retry_after"), path, method), 1))
        elif kind.endswith("_5xx"):
            path, method = p("path")
            self.http.append((kind, emu.fail_http(p("status"), p("count"), None, path, method), p("count")))
        elif kind == "submit_lost":
            emu.timeout_next_order(p("count"))
            self.lost_armed += p("count")
        elif kind == "slow":
            emu.set_response_delay(p("ms"))
            self.until["slow"] = step + p("candles")
            faults[kind] += 1
        elif kind == "clock_shift":
            emu.set_clock_skew(p("ms"))
            self.until["clock_shift"] = step + p("candles")
            faults[kind] += 1
        elif kind.startswith(("mutated", "repeated")):
            action, target = kind.split("_")
            tamper.arm(target, action, p("count"))
        self.report.log.append(f"step {step}: {fault.describe()}{' after the step' if fault.after_step else ''}")

    def end_timed(self, emu: Emulator, step: int) -> None:
        if self.until.get("slow") == step:
            emu.set_response_delay(0)
        if self.until.get("clock_shift") == step:
            emu.set_clock_skew(0)

    def count_consumed(self, emu: Emulator, tamper: FrameTamper) -> None:
        """What the armed faults did before they are switched off."""
        faults, unused = self.report.faults, self.report.armed_unused
        for kind, record, armed in self.http:
            used = armed - record.count  # the record counts down as requests consume it (gone at 0)
            faults[kind] += used
            unused[kind] += armed - used
        lost_left = emu.faults.accept_then_timeout
        faults["submit_lost"] += self.lost_armed - lost_left
        unused["submit_lost"] += lost_left
        for kind, n in tamper.done.items():
            faults[kind] += n
        for (target, action), n in tamper.armed.items():
            unused[f"{action}_{target}"] += n
        for kind in [k for k, v in unused.items() if not v]:
            del unused[kind]

    # --- the run -------------------------------------------------------------------------------

    def run(self) -> SoakReport:
        started = time.monotonic()
        report = self.report
        # realtrade's own log, kept for the report of a failing run (the last few hundred lines).
        trail = _Trail()
        wanted = {"realtrade_core": logging.INFO, "realtrade_core.live": logging.DEBUG,
                  f"realtrade_{self.exchange}": logging.INFO}  # fmt: skip
        loggers = [logging.getLogger(name) for name in wanted]
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(wanted[lg.name])
        for lg in loggers[::2]:  # the live logger's records reach the handler through realtrade_core
            lg.addHandler(trail)
        try:
            self._run(report, started)
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.removeHandler(trail)
                lg.setLevel(level)
        if not report.ok:
            report.log.append("realtrade log (last lines):")
            report.log.extend(trail.lines)
        self.out(report.table())
        return report

    def _run(self, report: SoakReport, started: float) -> None:
        self.out(f"fault soak: {self.exchange}, seed {self.seed}, "
                 f"{'2021 replay (old dates)' if self.old_dates else 'today'}")  # fmt: skip
        with self._emulator() as emu:
            tamper = FrameTamper(emu, random.Random(f"frames-{self.seed}"))
            store = self.store = self._store(emu)
            try:
                cerebro, broker, data = self._cerebro(store)
                thread = threading.Thread(target=self._run_cerebro, args=(cerebro,), daemon=True, name="soak-cerebro")
                thread.start()
                try:
                    strategy = self._started(cerebro)
                    self._drive(emu, tamper, strategy, broker)
                    self._settle(emu, strategy, broker)
                finally:
                    self._stop(cerebro, thread)
                if self.cerebro_error is not None:
                    report.checks.append(Check("cerebro", False, f"cerebro failed: {self.cerebro_error!r}"))
                verify(report, emu, store, broker, data, strategy)
            finally:
                store.stop()
        report.seconds = time.monotonic() - started

    def _cerebro(self, store: Any) -> tuple[bt.Cerebro, Any, Any]:
        cerebro = bt.Cerebro(stdstats=False)
        data = store.getdata(dataname=SYMBOL, timeframe="1m", backfill_bars=5, qcheck=0.05)
        cerebro.adddata(data)
        broker = store.getbroker(
            mode="live", journal=str(self.workdir / f"journal-{self.exchange}-{self.seed}.sqlite3"),
            fill_grace=1.0, audit_interval=5.0, balance_refresh=5.0, poll_interval=1.0,
            unknown_outcome_window=UNKNOWN_WINDOW,
        )  # fmt: skip
        cerebro.setbroker(broker)
        cerebro.addstrategy(SoakStrategy, seed=self.seed, quiet=self.quiet)
        return cerebro, broker, data

    def _run_cerebro(self, cerebro: bt.Cerebro) -> None:
        try:
            cerebro.run()
        except BaseException as exc:  # reported by run()
            self.cerebro_error = exc
        finally:
            self.cerebro_done.set()

    def _started(self, cerebro: bt.Cerebro) -> SoakStrategy:
        if not wait_for(lambda: self.cerebro_done.is_set() or getattr(cerebro, "runningstrats", None), 60):
            raise RuntimeError("cerebro did not start its strategy within 60 s")
        if self.cerebro_error is not None:
            raise RuntimeError(f"cerebro failed at start: {self.cerebro_error!r}") from self.cerebro_error
        strategy: SoakStrategy = cerebro.runningstrats[0]
        if not wait_for(lambda: strategy.live and strategy.bars, 60):
            raise RuntimeError("the feed did not go LIVE within 60 s")
        return strategy

    def _stop(self, cerebro: bt.Cerebro, thread: threading.Thread) -> None:
        deadline = time.monotonic() + 60
        while not self.cerebro_done.wait(0.05) and time.monotonic() < deadline:
            cerebro.runstop()  # a stop asked before run() has started is forgotten: insist
        thread.join(timeout=30)

    def _seen(self, strategy: SoakStrategy, open_ms: int) -> bool:
        return bool(strategy.bars) and strategy.bars[-1][0] >= open_ms

    def _drive(self, emu: Emulator, tamper: FrameTamper, strategy: SoakStrategy, broker: Any) -> None:
        steps = self.candles if self.candles is not None else 10**9
        deadline = time.monotonic() + (self.minutes or 0) * 60 if self.minutes is not None else None
        schedule: dict[int, list[Fault]] = {}
        # A timed run draws its schedule in blocks, so its length need not be known up front.
        block = 500
        step = 0
        while step < steps and (deadline is None or time.monotonic() < deadline):
            if step % block == 0:
                for f in plan(self.seed + step // block, block, self.exchange):
                    schedule.setdefault(step + f.step, []).append(f)
            began = time.monotonic()
            self.end_timed(emu, step)
            todo = schedule.pop(step, [])
            for fault in (f for f in todo if not f.after_step):
                self.inject(fault, emu, tamper, step)
            now = emu.step(1)
            for fault in (f for f in todo if f.after_step):
                self.inject(fault, emu, tamper, step)
            wait_for(lambda at=now: self._seen(strategy, at - MINUTE) or self.cerebro_done.is_set(), BAR_WAIT)
            if self.rng.random() < 0.5:
                wait_for(lambda: broker._live_answered() or self.cerebro_done.is_set(), ANSWER_WAIT)
            if self.cerebro_done.is_set():
                break
            self.report.log.append(f"step {step}: {time.monotonic() - began:.1f} s")
            step += 1
        self.report.steps = step
        self.count_consumed(emu, tamper)
        self.report.log.extend(f"frame: {d}" for d in tamper.details)
        tamper.disarm()
        emu.reset_faults()

    def _settle(self, emu: Emulator, strategy: SoakStrategy, broker: Any) -> None:
        """No new orders, a few clean candles, then time (bounded) for the broker to catch up.

        The market keeps moving while the broker catches up (a candle every few seconds, up to
        SETTLE_MORE): an order cancelled for its validity ends Expired only at its next bar, as in
        a backtest, and a market standing still would keep it waiting."""
        self.quiet.set()
        started = time.monotonic()
        cap = started + SETTLE_CAP

        def left(most: float) -> float:
            return max(0.0, min(most, cap - time.monotonic()))

        for n in range(SETTLE_CANDLES + SETTLE_MORE):
            if self.cerebro_done.is_set():
                return
            if n >= SETTLE_CANDLES and wait_for(lambda: not unsettled(emu, broker), left(3.0)):
                break
            if time.monotonic() >= cap:
                self.report.log.append(f"wind-down cut at {SETTLE_CAP:.0f} s")
                break
            now = emu.step(1)
            wait_for(lambda at=now: self._seen(strategy, at - MINUTE) or self.cerebro_done.is_set(), left(30))
            wait_for(lambda: broker._live_answered() or self.cerebro_done.is_set(), left(30))
            self.report.settle_candles = n + 1
        self.report.figures["stream reconnects"] = reconnects(self.store)
        settled = wait_for(lambda: self.cerebro_done.is_set() or not unsettled(emu, broker), left(SETTLE_WAIT))
        self.report.figures["settled after the faults in"] = (
            f"{time.monotonic() - started:.1f} s, {self.report.settle_candles} clean candles"
            if settled
            else f"not within {time.monotonic() - started:.0f} s"
        )
        if not settled:
            self.report.log.append(f"not settled: {unsettled(emu, broker)}")


# --- comparison ----------------------------------------------------------------------------------


def _broker_open(session: Any) -> set[str]:
    """Client order ids the broker believes rest on the exchange."""
    return {cid for cid, t in list(session.orders.items()) if not t.done and not t.unsent}


def unsettled(emu: Emulator, broker: Any) -> list[str]:
    """What the broker has not caught up with yet (empty when it has)."""
    session = broker.live
    why = []
    if not session.inbox.empty():
        why.append("events waiting in the inbox")
    pending = [cid for cid, t in list(session.orders.items())
               if not t.done and not t.unsent and (not t.acked or t.cancelling or t.final is not None)]  # fmt: skip
    if pending:
        why.append(f"orders waiting for an answer or their fills: {pending}")
    sender = session.sender
    if sender is not None and (not sender.tasks.empty() or sender.resolver.pending):
        why.append("requests still being sent or resolved")
    symbol_fills = {str(f.trade_id) for f in emu.fills(SYMBOL)}
    journaled = {f.trade_id for f in session.journal.fills(SYMBOL)}
    if symbol_fills - journaled:
        why.append(f"fills not recorded yet: {sorted(symbol_fills - journaled)}")
    if {o.client_order_id for o in emu.orders(SYMBOL, status="open")} != _broker_open(session):
        why.append("open orders differ")
    if _balances_differ(session.balances, emu.balances()):
        why.append("balances differ")
    return why


def _balances_differ(mine: dict[str, tuple[Decimal, Decimal]], theirs: dict[str, Any]) -> list[str]:
    diffs = []
    for asset in sorted(set(theirs) | {a for a in mine if a in ("USDT", "BTC")}):
        free, locked = mine.get(asset, (Decimal(0), Decimal(0)))
        b = theirs.get(asset)
        ex = (b.free, b.locked) if b is not None else (Decimal(0), Decimal(0))
        if (free, locked) != ex:
            diffs.append(f"{asset}: broker {free}/{locked}, exchange {ex[0]}/{ex[1]} (free/locked)")
    return diffs


def reconnects(store: Any) -> str:
    """How often the store's streams reconnected (read while they run)."""
    found = []
    for name, ws in (("public", getattr(store, "_public_ws", None)), ("private", getattr(store, "_private_ws", None))):
        if ws is not None:
            found.append(f"{name} {ws.stats().reconnects}")
    return ", ".join(found) or "n/a"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat()


def _fmt(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def verify(report: SoakReport, emu: Emulator, store: Any, broker: Any, data: Any, strategy: SoakStrategy) -> None:
    """Compare what the strategy, the broker and its ledger saw with the exchange's records."""
    session = broker.live
    checks, figures = report.checks, report.figures

    # Candles: every bar once, in order, equal to the exchange's candle.
    bars = strategy.bars
    first, last_close = bars[0][0] if bars else None, emu.engine.now()
    expected = [] if first is None else [
        (c.open_time, float(c.open), float(c.high), float(c.low), float(c.close), float(c.volume))
        for c in emu.engine.candles(MARKET_ID, MINUTE, first, last_close, limit=100_000)
        if c.open_time + MINUTE <= last_close
    ]  # fmt: skip
    opens = [b[0] for b in bars]
    repeated = sorted(t for t, n in Counter(opens).items() if n > 1)
    disorder = sum(1 for a, b in itertools.pairwise(opens) if b <= a)
    missing = sorted({c[0] for c in expected} - set(opens))
    wrong = [b for b, c in zip(bars, expected, strict=False) if b != c]
    history = strategy.history_bars
    figures["candles delivered (history + live)"] = f"{len(bars)} ({history} + {len(bars) - history})"
    checks.append(Check(
        "candles once and in order", bars == expected and bool(bars),
        f"{len(bars)} bars, {len(expected)} candles closed from the first bar on; repeated {repeated[:5]}, "
        f"out of order {disorder}, missing {[_iso(t) for t in missing[:5]]}{'...' if len(missing) > 5 else ''}, "
        f"differing {wrong[:2]}",
    ))  # fmt: skip
    quarantined = {**{f"stream {k}": v for k, v in store.quarantined.items()},
                   **{f"feed {k}": v for k, v in data.quarantined.items()}}  # fmt: skip
    figures["messages quarantined"] = ", ".join(f"{k} {v}" for k, v in sorted(quarantined.items())) or "none"

    # Orders: by client order id, the exchange's and the broker's.
    ex_orders = emu.orders(SYMBOL)
    by_cid = Counter(o.client_order_id for o in ex_orders)
    twice = sorted(cid for cid, n in by_cid.items() if n > 1)
    checks.append(Check("no order sent twice", not twice, f"{len(ex_orders)} orders on the exchange; client order "
                                                           f"ids seen twice: {twice or 'none'}"))  # fmt: skip
    tracked = dict(session.orders)
    unknown = sorted(cid for cid in by_cid if cid not in tracked)
    checks.append(
        Check("no order the broker does not know", not unknown, f"unknown to the broker: {unknown or 'none'}")
    )
    ex_by_cid = {o.client_order_id: o for o in ex_orders}
    refused = {r.client_order_id for r in emu.refused_orders() if r.client_order_id}
    lost = []
    filled_differs = []
    for cid, t in tracked.items():
        o = ex_by_cid.get(cid)
        if o is None:
            # Never on the exchange: not sent (expired first), refused, or cancelled before it got there.
            ended_unfilled = t.done and t.executed == 0 and t.order.status != bt.Order.Completed
            if not (t.unsent or ended_unfilled):
                lost.append(f"{cid} ({t.order.getstatusname()}, refused by the exchange: {cid in refused})")
            continue
        if t.executed != o.filled:
            filled_differs.append(f"{cid}: broker {t.executed}, exchange {o.filled} ({o.status.value})")
    checks.append(Check("no order missing", not lost, f"{len(tracked)} orders sent by the broker; missing on the "
                                                      f"exchange: {lost or 'none'}"))  # fmt: skip
    checks.append(Check("filled amounts equal", not filled_differs, "; ".join(filled_differs) or
                        f"{sum(1 for o in ex_orders if o.filled)} orders with fills agree"))  # fmt: skip
    ex_open = {o.client_order_id for o in emu.orders(SYMBOL, status="open")}
    mine_open = _broker_open(session)
    phantom, gone = sorted(mine_open - ex_open), sorted(ex_open - mine_open)
    checks.append(Check("open orders equal", not phantom and not gone,
                        f"{len(ex_open)} open on the exchange; open only in the broker (phantom): {phantom or 'none'}; "
                        f"open only on the exchange: {gone or 'none'}"))  # fmt: skip
    final = Counter(t.order.getstatusname() for t in tracked.values())
    figures["orders made by the strategy"] = (
        f"{len(strategy.made)} ({', '.join(f'{k} {v}' for k, v in sorted(strategy.actions.items()))})"
    )
    figures["orders sent, by broker status"] = ", ".join(f"{k} {v}" for k, v in sorted(final.items()))
    figures["orders on the exchange, by status"] = ", ".join(
        f"{k} {v}" for k, v in sorted(Counter(o.status.value for o in ex_orders).items()))  # fmt: skip
    figures["order requests refused by the exchange"] = len(emu.refused_orders())
    figures["trades closed"] = strategy.trades_closed

    # Fills: every fill of the account journaled exactly once.
    ex_fills = emu.fills(SYMBOL)
    journal = Journal(session.journal.path)  # the broker closed its own when it stopped
    try:
        journaled = Counter(f.trade_id for f in journal.fills(SYMBOL))
    finally:
        journal.close()
    not_recorded = sorted({str(f.trade_id) for f in ex_fills} - set(journaled))
    foreign = sorted(set(journaled) - {str(f.trade_id) for f in ex_fills})
    figures["fills"] = f"{len(ex_fills)} ({sum(1 for f in ex_fills if f.is_maker)} maker)"
    once = max(journaled.values(), default=1) == 1
    checks.append(Check("every fill recorded once", not not_recorded and not foreign and once,
                        f"{len(ex_fills)} fills on the exchange, {sum(journaled.values())} journaled; not journaled: "
                        f"{not_recorded or 'none'}; unknown to the exchange: {foreign or 'none'}"))  # fmt: skip

    # The ledger and the account.
    bal = emu.balances()
    usdt = bal["USDT"].total if "USDT" in bal else Decimal(0)
    btc = bal["BTC"].total if "BTC" in bal else Decimal(0)
    book = session.books[SYMBOL]
    cash, held, dust = session.ledger_cash, book.held, book.dust
    report.account = [
        ("USDT", _fmt(cash), _fmt(usdt), _fmt(cash - usdt)),
        ("BTC", f"{_fmt(held)} (+ dust {_fmt(dust)})", _fmt(btc), _fmt(held + dust - btc)),
        ("position", f"{_fmt(book.size)} (fees {_fmt(book.coin_fees)})", "", ""),
    ]
    checks.append(
        Check("ledger cash == account USDT", cash == usdt, f"ledger {cash}, account {usdt}, diff {cash - usdt}")
    )
    checks.append(Check("ledger held + dust == account BTC", held + dust == btc,
                        f"held {held} + dust {dust}, account {btc}, diff {held + dust - btc}"))  # fmt: skip
    shrunk = [m for m in strategy.store_messages if "shrinks to" in m]
    checks.append(Check("the ledger never shrank to the account", not shrunk, "; ".join(shrunk[:3]) or "never"))
    differ = _balances_differ(session.balances, bal)
    checks.append(Check("broker balances == exchange balances", not differ, "; ".join(differ) or
                        ", ".join(f"{a} {_fmt(b.free)}/{_fmt(b.locked)}" for a, b in sorted(bal.items()))))  # fmt: skip
    # What happened, order by order, for the log a failing run prints.
    fills_of: dict[str, list[str]] = {}
    for f in ex_fills:
        fills_of.setdefault(f.client_order_id, []).append(f"{f.amount}@{f.price} fee {f.fee} {f.fee_asset}")
    for cid, t in tracked.items():
        o = ex_by_cid.get(cid)
        report.log.append(
            f"order {cid}: {t.side} {t.type} {t.amount} closes {t.closes} executed {t.executed} "
            f"{t.order.getstatusname()} / exchange {o.status.value if o else 'none'}; fills {fills_of.get(cid, [])}"
        )  # fmt: skip
    report.log.extend(f"store: {m}" for m in strategy.store_messages)
    refused_fills = [m for m in strategy.store_messages if " refused: " in m and m.startswith("fill ")]
    figures["stream fills refused (checked over REST)"] = len(refused_fills)
    figures["store notifications"] = len(strategy.store_messages)


# --- command line ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchange", choices=EXCHANGES, action="append", help="default: both")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one (printed)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--candles", type=int, help="candles with faults per run (default 60)")
    length.add_argument("--minutes", type=float, help="wall-clock minutes of faults, shared by all runs")
    parser.add_argument(
        "--old-dates", action="store_true", help="only the 2021 replay (default: today's dates and 2021)"
    )
    parser.add_argument("--today", action="store_true", help="only today's dates")
    parser.add_argument("-v", "--verbose", action="store_true", help="log realtrade at INFO")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    for handler in logging.getLogger().handlers:  # the soak's own log level raises some loggers' levels
        handler.setLevel(logging.INFO if args.verbose else logging.ERROR)
    # A client that gave up on a slow answer makes aiohttp log the reset connection: that is the fault.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    exchanges = args.exchange or list(EXCHANGES)
    modes = [False] if args.today else [True] if args.old_dates else [False, True]
    runs = [(ex, old) for ex in exchanges for old in modes]
    print(f"fault soak seed {seed}: {len(runs)} run(s)", flush=True)
    failed = 0
    for exchange, old in runs:
        minutes = args.minutes / len(runs) if args.minutes is not None else None
        candles = None if minutes is not None else (args.candles or 60)
        report = Soak(exchange, seed, candles=candles, minutes=minutes, old_dates=old,
                      out=lambda line: print(line, flush=True)).run()  # fmt: skip
        failed += not report.ok
        if not report.ok:
            saved = Path(tempfile.gettempdir()) / f"realtrade-soak-{exchange}-{seed}-{'2021' if old else 'today'}.log"
            saved.write_text(report.table() + "\n" + "\n".join(report.log) + "\n")
            print(f"  the fault log, each order and realtrade's last log lines: {saved}", flush=True)
    print(f"fault soak seed {seed}: {len(runs) - failed} of {len(runs)} run(s) passed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
