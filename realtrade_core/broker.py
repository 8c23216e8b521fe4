"""Broker: paper trading (the default) or live orders, behind backtrader's broker interface.

Paper mode is backtrader's BackBroker fed with the live bars, with the exchange's rules
(:class:`~realtrade_core.backtest.ExchangeRulesMixin`): it works once per bar however often
cerebro calls it while waiting for the next one, never fills an order on the bar that created
it, rounds sizes down to the lot step and prices to the tick, refuses what the exchange would
refuse (minimum amount and notional, a spot sell of coins not held) and charges each fee in the
asset the exchange takes it in. A backtest given the same rules
(:class:`~realtrade_core.backtest.ExchangeBackBroker`, ``store.backtest_broker(symbol)``) makes
the same orders, fills, trades and final value on the same candles. Commission defaults to the
exchange's taker fee for each market (``commission=`` overrides the rate).

Live mode sends real orders through ccxt and takes status and fills from the exchange's
private stream; its machinery (threads, unknown outcomes, reconciliation) is in
:mod:`realtrade_core.live`, its order journal in :mod:`realtrade_core.journal`.

Every order, paper or live, first passes the ``realtrade_pre_trade`` hooks (risk plugins); a
veto turns it into a Rejected order carrying the reason, and nothing is sent.

An exchange plugin names this class in its ``ExchangeSpec`` as it is, with no subclass: the
exchange's own order rules (order and cancel parameters, the client order id field, what its
errors mean, stop rules, how a bracket's exits rest, OCO lists) are its
:class:`~realtrade_core.execution.ExecutionDialect` (``ExchangeSpec(execution=...)``), read here
through :attr:`Broker.dialect`.
"""

from __future__ import annotations

import logging
import queue
import time
import uuid
from typing import Any

import backtrader as bt

from .backtest import ExchangeCommission, ExchangeRulesMixin, SpotCommission
from .contract import Contract
from .errors import ConfigurationError
from .execution import BRACKET_EXITS, ExecutionDialect
from .rules import TICK_SIZE, MarketRules
from .spec import OrderRequest

log = logging.getLogger(__name__)

MODES = ("paper", "live")
_ORDER_TYPES = {
    bt.Order.Market: "market",
    bt.Order.Limit: "limit",
    bt.Order.Stop: "stop",
    bt.Order.StopLimit: "stop_limit",
    bt.Order.Close: "market",
}


def new_client_order_id(prefix: str = "rt") -> str:
    """A unique client order id: at most 36 characters of ``[A-Za-z0-9_-]`` (both exchanges' rule)."""
    return f"{prefix}-{uuid.uuid4().hex[:30]}"


class Broker(ExchangeRulesMixin, bt.brokers.BackBroker, Contract):
    """Base class of every exchange broker: ``store.getbroker(mode="paper" | "live", ...)``.

    Parameters beyond BackBroker's (``cash``, ``checksubmit``, ``coc``, ...):

    - ``store``: the :class:`~realtrade_core.store.Store` (set by ``store.getbroker``).
    - ``mode`` (``"paper"``): ``"paper"`` simulates with backtrader's BackBroker; ``"live"``
      sends real orders to the store's venue.
    - ``commission`` (None): paper fee per trade as a fraction; None uses each market's taker
      fee. Live commissions are the exchange's real fees.
    - ``exchange_rules`` (True): paper trading applies each market's rules (lot step, tick,
      minimums, spot holdings, the fee's asset; see :mod:`realtrade_core.backtest`); False
      leaves backtrader's BackBroker as it is (still once per bar).
    - ``allow_mainnet`` (False): **the mainnet interlock.** A live broker on a ``mainnet``
      store refuses to exist without ``allow_mainnet=True``: it raises ConfigurationError
      when constructed, before any request is sent. Paper mode, ``testnet`` and ``emulator``
      need no opt-in.

    Live mode only:

    - ``journal`` (None): the order journal, a path or a :class:`~realtrade_core.journal.Journal`.
      None means ``~/.local/share/realtrade/<exchange>-<venue>-<key prefix>.sqlite3`` (see
      :func:`~realtrade_core.journal.default_journal_path`); in memory for an in-process
      emulator, which forgets its own state when it stops.
    - ``balance_refresh`` (60): seconds between REST balance refreshes (the stream keeps
      balances current between them).
    - ``audit_interval`` (30): seconds between REST checks of open orders while the private
      stream is up (it can fail silently); ``poll_interval`` (2): the same while it is down, or
      for exchanges without one.
    - ``fill_grace`` (3): seconds to wait for fills the stream announced before fetching them.
    - ``unknown_outcome_window`` (None): after a timeout or 5xx on create, how long (seconds)
      the order is looked up by client order id before it counts as absent; None derives it
      from the exchange's ``recvWindow`` (plus 2 s, at least 5 s).
    - ``submit_retries`` (2): how many times an order confirmed absent after an unknown
      outcome is sent again (with the same client order id).
    - ``stream_timeout`` (10): seconds ``start`` waits for the private stream to connect.
    - ``stop_timeout`` (10): seconds ``stop`` waits for the orders the strategy made (on its
      last bar too) to be sent and answered before the workers stop.
    - ``currency`` (None): the asset ``getcash()`` reports; None is the quote asset of the
      first traded market.

    - ``cash`` (live: None): the capital the strategy trades (its *ledger*, below); None is the
      quote asset's free balance at start. A ledger its journal kept goes on as it was.
    - ``ledger`` ("default"): the ledger's name. Two live brokers on one account and venue each
      need their own; a clash is a ConfigurationError before any order.
    - ``adopt_holdings`` (False): a new ledger starts with the account's coins of each traded
      market as its positions (at the current price) instead of flat.
    - ``rebind_journal`` (False): the journal belongs to the account of another API key; True
      says it is this account under a new (rotated) key and binds the journal to it. The default
      journal file is named after the key, so give the old file with ``journal=``.
    - ``quote_cash`` (None): live, the capital in the quote currencies of traded markets other
      than ``currency`` (e.g. ``{"BTC": 0.05}`` to trade ETH/BTC beside SOL/USDT); None is each
      one's free balance at start. ``getvalue()`` counts that cash and those positions in
      ``currency`` at the last price of their market (BTC/USDT). A coin held in one market
      cannot be the cash of another in the same ledger (ConfigurationError at start: use two
      brokers). Paper trading keeps one cash and refuses orders in a market quoted in another.

    Perpetual stores only (see ``docs/futures.md``):

    - ``leverage`` (1) and ``max_leverage`` (5): the leverage margin is taken at, refused above
      the cap before anything is sent; live, set on the exchange for each traded contract at start.
    - ``margin_mode`` ("cross"): live, "cross" or "isolated", set on the exchange at start.
    - ``funding`` ("exchange"): paper, where funding rates come from.

    A live perpetual broker is a :class:`~realtrade_core.live.contracts.PerpetualSession`: one-way
    mode only (a hedge-mode account is refused at start), long and short positions, exits sent
    ``reduceOnly``, funding from the private stream, and :meth:`exchange_position` for the
    exchange's own view (liquidation price included).

    **The strategy's own ledger.** In live mode ``getcash()``, ``getvalue()`` and
    ``getposition()`` are the ledger's, not the account's: the strategy trades its own capital,
    its positions start flat (or as its journal left them) and hold only what it bought, so it
    never sells coins the account held for other reasons (a sell beyond its position ends
    Margin with the reason). Positions count filled amounts as a backtest does; a fee the
    exchange takes in the coin is commission (valued in the quote at the fill price), and an
    exit asking for more than the account holds for the position, by no more than those fees,
    is sent at what is held (lot step) and closes the position (``order.info.fee_adjusted``).
    ``getvalue()`` is the ledger's cash plus what the account holds for each position at its
    last price. The account is the ceiling: where it holds less than the ledger (coins or cash
    moved away), the ledger shrinks to it and ``notify_store`` says so. Open orders a previous
    run left on the exchange (known from the journal) come back as live backtrader orders:
    ``broker.get_orders_open()`` lists them (``order.info.reattached`` is True) and the
    strategy receives them through ``notify_order`` (Accepted, or Partial) on its first bar;
    ``self.cancel(order)`` cancels them. Orders the journal does not know, and fills made
    while the process was down, are reported through ``notify_store``.
    """

    params = (
        ("cash", None),  # paper: 10,000 as backtrader; live: the quote asset's free balance at start
        ("store", None),
        ("mode", "paper"),
        ("commission", None),
        ("allow_mainnet", False),
        ("journal", None),
        ("balance_refresh", 60.0),
        ("audit_interval", 30.0),
        ("poll_interval", 2.0),
        ("fill_grace", 3.0),
        ("unknown_outcome_window", None),
        ("submit_retries", 2),
        ("stream_timeout", 10.0),
        ("stop_timeout", 10.0),
        ("currency", None),
        ("bracket_exits", None),  # None: the exchange's (its execution dialect's bracket_exits)
        ("exchange_rules", True),
        ("ledger", "default"),
        ("adopt_holdings", False),
        ("quote_cash", None),
        ("rebind_journal", False),
        ("leverage", 1.0),  # perpetual contracts only
        ("max_leverage", 5.0),
        ("margin_mode", "cross"),  # perpetual contracts, live: "cross" or "isolated"
        ("funding", "exchange"),
    )

    def __init__(self) -> None:
        #: ``cash=`` as given (live: None is the quote asset's free balance at start); backtrader's
        #: own machinery needs a number, which in live mode nothing reads.
        self.cash_asked: float | None = self.p.cash
        if self.p.cash is None:
            self.p.cash = 10_000.0 if self.p.mode != "live" else 0.0
        super().__init__()
        if self.p.mode not in MODES:
            raise ConfigurationError(f"unknown broker mode {self.p.mode!r}; use 'paper' (default) or 'live'")
        if self.p.store is None:
            raise ConfigurationError("a realtrade broker needs a store: use store.getbroker()")
        self._check_perpetual_settings()
        exits = self.bracket_exits
        if exits not in BRACKET_EXITS:
            raise ConfigurationError(f"unknown bracket_exits {exits!r}; use one of {', '.join(BRACKET_EXITS)}")
        if exits == "oco" and getattr(self.p.store, "perpetual", False):
            raise ConfigurationError("bracket_exits='oco' sends spot OCO order lists, which perpetual contracts do not "
                                     "have; use 'held' or 'conditional'")  # fmt: skip
        if exits == "oco" and not self.dialect.has_oco_orders:
            venue = self.p.store.exchange or "this exchange"
            raise ConfigurationError(f"bracket_exits='oco' needs OCO order lists, which {venue} does not offer "
                                     f"here; use 'held' or 'conditional'")  # fmt: skip
        if self.p.mode == "live":
            self.check_live_allowed()
        if self.p.commission is not None:
            self.addcommissioninfo(SpotCommission(commission=float(self.p.commission)))
        self._fee_set: set[str] = set()
        self._rules: dict[str, MarketRules] = {}
        self._lockstep: Any = None  # a LockstepClient when the store's emulator runs in lockstep
        self._lockstep_reached: int | None = None
        self._lockstep_settled: int | None = None  # live: the last close whose fills were applied
        self._lockstep_wait: tuple[int | None, float] | None = None  # (where, since) the ack waits
        self._live: Any = None  # the LiveSession of a live broker (kept after stop: final cash/value)
        self._history_warned = False

    def _check_perpetual_settings(self) -> None:
        """``leverage`` is for perpetual stores, a number above 0 and at most ``max_leverage``;
        a perpetual's paper broker applies its rules and a readable ``funding``: refused here,
        before anything is sent."""
        leverage, cap = self.p.leverage, self.p.max_leverage
        for name, value in (("leverage", leverage), ("max_leverage", cap)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigurationError(f"{name} must be a number above 0 (e.g. 3 for 3x), got {value!r}")
        margin_mode = self.p.margin_mode
        if margin_mode not in ("cross", "isolated"):
            raise ConfigurationError(f"margin_mode must be 'cross' (the default) or 'isolated', got {margin_mode!r}")
        if not getattr(self.p.store, "perpetual", False):
            if margin_mode != "cross":
                raise ConfigurationError(
                    f"margin_mode={margin_mode!r} applies to perpetual contracts; this is a spot store "
                    f"(get one with market_type='perpetual')"
                )
            if leverage != 1:
                raise ConfigurationError(
                    f"leverage={leverage!r} applies to perpetual contracts; this is a spot store "
                    f"(get one with market_type='perpetual')"
                )
            return
        if not self.p.exchange_rules:
            raise ConfigurationError(
                "exchange_rules=False leaves a perpetual contract without its margin and funding: paper "
                "trading of perpetuals always applies the contract's rules; leave exchange_rules out"
            )
        funding = self.p.funding
        if not (funding is None or (isinstance(funding, str) and funding == "exchange")):
            from .perpetual import FundingRates

            try:
                FundingRates(funding)
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(f"funding: {exc}; or funding='exchange' (the default) or None") from exc
        if leverage > cap:
            raise ConfigurationError(
                f"leverage {leverage:g}x is above the cap of {cap:g}x: nothing was sent. A position at "
                f"{leverage:g}x is liquidated by a move of about {100 / leverage:.3g} % against it; lower "
                f"leverage, or raise the cap with max_leverage={leverage:g} if you mean it"
            )

    @property
    def paper(self) -> bool:
        return self.p.mode == "paper"

    @property
    def dialect(self) -> ExecutionDialect:
        """The exchange's execution rules (its ``ExchangeSpec.execution``)."""
        return self.p.store.spec.execution

    @property
    def bracket_exits(self) -> str:
        """Where this broker's live brackets rest their exits (see
        :data:`~realtrade_core.execution.BRACKET_EXITS`): ``bracket_exits=`` when given, else the
        exchange's way for spot; on perpetual contracts ``"held"`` (they have no OCO lists, and
        two resting reduce-only exits of one position may be refused by the exchange)."""
        if self.p.bracket_exits:
            return self.p.bracket_exits
        return "held" if getattr(self.p.store, "perpetual", False) else self.dialect.bracket_exits

    @property
    def live(self) -> Any:
        """The :class:`~realtrade_core.live.LiveSession` (None in paper mode or before start)."""
        return self._live

    def check_live_allowed(self) -> None:
        """Refuse live orders on mainnet without the explicit opt-in, before anything is sent."""
        store = self.p.store
        if store.venue == "mainnet" and not self.p.allow_mainnet:
            raise ConfigurationError(
                f"live trading on {store.exchange} mainnet sends real orders with real money; "
                f"pass allow_mainnet=True to store.getbroker(mode='live', ...) to confirm, "
                f"or use venue='testnet' / 'emulator', or mode='paper'"
            )

    def start(self) -> None:
        from . import runguard

        runguard.guard(bt.metabase.findowner(self, bt.Cerebro))  # an exception or Ctrl-C still stops us
        super().start()
        if not self.paper:
            self.check_live_allowed()  # params can be changed after construction
        self.p.store.start()
        self._lockstep = None
        self._lockstep_reached = None
        self._lockstep_settled = None
        self._lockstep_wait = None
        if self.p.store.venue == "emulator":
            from .emulator.lockstep import LockstepClient

            self._lockstep = LockstepClient.for_store(self.p.store)
        if not self.paper:
            from .live import LiveSession
            from .live.contracts import PerpetualSession

            self._live = PerpetualSession(self) if getattr(self.p.store, "perpetual", False) else LiveSession(self)
            try:
                self._live.start()
            except BaseException:
                self._live.stop()
                self._live = None
                raise

    def stop(self) -> None:
        # The stopped session stays: getcash()/getvalue() after cerebro.run() report the account
        # as last seen, not the paper broker's starting cash.
        if self._live is not None:
            self._live.stop()
        super().stop()

    # --- commission and rules from the exchange's markets -----------------------------------

    def rules_for(self, data: Any) -> MarketRules | None:
        """The market rules paper trading applies to ``data`` (None in live mode, with
        ``exchange_rules=False``, or before the feed knows its market)."""
        if not self.paper or not self.p.exchange_rules:
            return None
        name = data._name
        rules = self._rules.get(name)
        if rules is None:
            market = getattr(data, "_market", None)
            if market is None:
                return None
            mode = getattr(self.p.store.client, "precisionMode", TICK_SIZE)
            rules = self._rules[name] = MarketRules.from_ccxt_market(market, precision_mode=mode)
        return rules

    def getcommissioninfo(self, data: Any) -> Any:
        name = data._name
        # Only once the feed has started and knows its market: asking earlier (a live broker
        # re-attaching orders at start) must not settle the fee without it.
        if name not in self._fee_set and hasattr(data, "_market"):
            self._fee_set.add(name)
            rules = self.rules_for(data)
            if name in self.comminfo:
                pass  # the user's own scheme for this data
            elif rules is not None and rules.perpetual:
                self.addcommissioninfo(self._perpetual_scheme(data, rules), name=name)
            elif rules is not None:
                # Paper: each fee in the asset the exchange charges it in, valued in the quote.
                self.addcommissioninfo(ExchangeCommission(rules=rules, commission=self.p.commission), name=name)
            elif getattr(self.p.store, "perpetual", False):
                # Live: the contract's margin and multiplier for sizes and trades; the exchange
                # charges the fees and settles the funding itself.
                mode = getattr(self.p.store.client, "precisionMode", TICK_SIZE)
                live_rules = MarketRules.from_ccxt_market(data._market, precision_mode=mode)
                self.addcommissioninfo(self._perpetual_scheme(data, live_rules, funding=None), name=name)
            else:
                # The exchange charges the fee itself; sizes (order_target_value/percent) in lot steps.
                fee = self.p.commission if self.p.commission is not None else data._market.get("taker")
                mode = getattr(self.p.store.client, "precisionMode", TICK_SIZE)
                step = MarketRules.from_ccxt_market(data._market, precision_mode=mode).amount_step
                self.addcommissioninfo(SpotCommission(commission=float(fee or 0.0), step=step), name=name)
        return super().getcommissioninfo(data)

    def _perpetual_scheme(self, data: Any, rules: MarketRules, funding: Any = "broker") -> Any:
        """Trading a perpetual contract: margin at ``leverage``, the taker fee, and funding
        (``funding="exchange"``: the rates the exchange settles, read at each funding time;
        live, None: the exchange settles it)."""
        from .backtest import PerpetualCommission
        from .perpetual import ExchangeFundingRates

        funding = self.p.funding if funding == "broker" else funding
        if funding == "exchange":
            funding = ExchangeFundingRates(self.p.store, rules.symbol)
        return PerpetualCommission(rules=rules, commission=self.p.commission, leverage=float(self.p.leverage),
                                   funding=funding, mult=float(rules.contract_size), symbol=rules.symbol)  # fmt: skip

    def exchange_position(self, data: Any) -> Any:
        """Live, on a perpetual store: the account's position in ``data``'s contract as the
        exchange reports it now (a REST request): an
        :class:`~realtrade_core.live.contracts.ExchangePosition` with its signed size, entry price,
        unrealised profit, liquidation price, mark price, leverage and margin mode."""
        if not getattr(self.p.store, "perpetual", False):
            raise ConfigurationError("exchange_position() is for perpetual contracts; this broker trades spot")
        if self._live is None:
            raise ConfigurationError(
                "exchange_position() asks the exchange for the live account's position: it needs a live broker "
                "(mode='live') that has started; a paper broker's position is getposition(data)"
            )
        return self._live.exchange_position(self._live.symbol_of(data))

    def on_funding(self, data: Any, payment: Any) -> None:
        verb = "received" if payment.amount >= 0 else "paid"
        self.p.store.put_notification(
            f"funding: {payment.symbol} {verb} {abs(payment.amount):.8g} at rate {payment.rate:g} "
            f"on {payment.size:g} contracts (mark {payment.mark:g})",
            payment,
        )

    # --- live mode: backtrader's broker interface ----------------------------------------------

    def next(self) -> None:
        if self._live is None:
            super().next()
        else:
            if self._lockstep is not None:
                self._lockstep_settle()  # first: what this bar brings is what the candle did
            self._live.next()
        if self._lockstep is not None:
            self._lockstep_ack()

    # --- lockstep replay (an emulator that waits at each candle close for the client) -------------

    def _lockstep_ack(self) -> None:
        """Acknowledge the candle close the strategy has acted on (see
        :mod:`realtrade_core.emulator.lockstep`). cerebro calls ``broker.next()`` before the
        strategy's ``next`` on each pass, so whatever every feed had reached at the previous
        call has been through the strategy by now; in live mode its orders must also have been
        answered by the exchange first."""
        acted_on, self._lockstep_reached = self._lockstep_reached, self._feeds_reached()
        if self._lockstep.acked is None and not self._lockstep_streaming():
            return  # the first close waits for the feeds' streams: the next candle must reach them
        if self._live is not None:
            held, why, behind = self._lockstep_view()
            if behind or not self._live_answered():
                if not self._lockstep_overdue(held):
                    return
                log.warning("lockstep: orders %s still unsettled %.0f s after the emulator stopped at %s; "
                            "acknowledging anyway", behind, self.p.stream_timeout, held)  # fmt: skip
            if why == "orders":
                self._lockstep.ack(held)  # orders traded within a candle: applied, and reacted to
                return
        if acted_on is not None:
            self._lockstep.ack(acted_on)

    def _lockstep_streaming(self) -> bool:
        """Every feed of this store has its candle stream subscribed at the emulator (a close
        published before would be lost and the replay would wait for it forever)."""
        store = self.p.store
        datas = getattr(self.cerebro, "datas", ())
        ours = [d for d in datas if getattr(getattr(d, "p", None), "store", None) is store and hasattr(d, "_symbol")]
        names = [d._symbol for d in ours]
        return all(self._lockstep.streams_candles(name) for name in names)

    def _lockstep_overdue(self, held: int | None) -> bool:
        """The replay has waited at ``held`` for more than ``stream_timeout`` (wall clock): what
        it waits for is not coming, and the market is let go rather than held for ever."""
        now = time.monotonic()
        if self._lockstep_wait is None or self._lockstep_wait[0] != held:
            self._lockstep_wait = (held, now)
        return now - self._lockstep_wait[1] > float(self.p.stream_timeout)

    def _lockstep_settle(self) -> None:
        """Live, in lockstep: before the strategy has a new bar, apply every fill and final status
        of this broker's orders up to the close the replay waits at, and let the session's own
        reactions to them (a sibling's cancel, a bracket's exits) be answered. Fills come on the
        private stream and the bar on the public one, and nothing else orders the two; while the
        replay waits the account stands still, so what the emulator reports is all there is to
        wait for. Bounded by ``stream_timeout``."""
        reached = self._feeds_reached()
        if reached is None or reached == self._lockstep_settled:
            return
        self._lockstep_settled = reached
        live = self._live
        deadline = time.monotonic() + float(self.p.stream_timeout)
        while True:
            _, _, behind = self._lockstep_view()
            if not behind and self._live_answered():
                return
            if time.monotonic() > deadline:
                log.warning("lockstep: orders %s were not settled %.0f s after the close at %d; the strategy gets "
                            "the bar as things stand", behind, self.p.stream_timeout, reached)  # fmt: skip
                return
            try:
                item = live.inbox.get(timeout=0.05)
            except queue.Empty:
                continue
            # Applied one by one, in order, as live.next() would. Only that: live.next() also acts
            # for the new bar (cancels orders whose validity ends, trails stops), whose answers
            # belong after the strategy's turn, as a backtest has them.
            try:
                live.apply(item)
            except Exception:  # one odd event must not stop the strategy
                log.exception("live broker: could not apply %s", type(item).__name__)

    def _lockstep_view(self) -> tuple[int | None, str | None, list[str]]:
        """Where the lockstep emulator waits, why (``"close"`` or ``"orders"``), and the client
        order ids of this broker's orders whose fills or final status there the live session
        has not applied yet (none while the replay runs: nothing stands still to wait for)."""
        from .emulator.lockstep import unapplied

        orders = dict(self._live.orders)
        ids = [cid for cid, t in orders.items() if not t.done and not t.unsent]
        held, why, states = self._lockstep.order_states(ids)
        if held is None:
            return None, None, []
        return held, why, unapplied(orders, states)

    def _feeds_reached(self) -> int | None:
        """The latest candle close (epoch ms) up to which every feed of this store has loaded
        its candles, or None while one lags behind (or has none yet)."""
        store = self.p.store
        reached = []
        for data in getattr(self.cerebro, "datas", ()):
            if getattr(getattr(data, "p", None), "store", None) is not store or not hasattr(data, "_last_close_ms"):
                continue  # another store's feed, or a clone of one of ours
            if data._last_close_ms is None:
                return None
            reached.append((data._last_close_ms, data.tf.ms))
        if not reached:
            return None
        latest = max(close for close, _ in reached)
        # A feed whose next candle closes after ``latest`` has everything up to it.
        return latest if all(close + length > latest for close, length in reached) else None

    def _live_answered(self) -> bool:
        """Every order the live session sent has been answered, and every cancel too."""
        orders = list(getattr(self._live, "orders", {}).values())
        # A bracket child (``held``: Accepted before it went out) is tracked once it is sent, and
        # is answered like any other order.
        return all(t.done or ((t.acked or t.unsent) and not t.cancelling) for t in orders)

    def cancel(self, order: bt.Order, bracket: bool = False) -> bool:
        if self._live is None:
            return super().cancel(order, bracket=bracket)
        return self._live.cancel(order)

    def get_cash(self) -> float:
        if self._live is None:
            return super().get_cash()
        return self._live.cash()

    getcash = get_cash

    def get_value(self, datas: Any = None, mkt: bool = False, lever: bool = False) -> float:
        if self._live is None:
            return super().get_value(datas=datas, mkt=mkt, lever=lever)
        return self._live.value(datas)

    getvalue = get_value

    def getposition(self, data: Any) -> bt.Position:
        if self._live is None:
            return super().getposition(data)
        return self._live.position(data)

    def get_orders_open(self, safe: bool = False) -> list[bt.Order]:
        """Orders still open; in live mode including those re-attached from a previous run."""
        if self._live is None:
            return super().get_orders_open(safe=safe)
        orders = self._live.orders_open()
        return [o.clone() for o in orders] if safe else orders

    def orderstatus(self, order: bt.Order) -> int:
        if self._live is None:
            return super().orderstatus(order)
        return order.status

    def set_cash(self, cash: float) -> None:
        if not self.paper:
            log.warning("live broker: the ledger's cash is set by getbroker(cash=...) when it starts; "
                        "setcash(%s) is ignored", cash)  # fmt: skip
            return
        super().set_cash(cash)

    setcash = set_cash

    def add_cash(self, cash: float) -> None:
        if not self.paper:
            log.warning("live broker: the ledger's cash moves only with its fills; add_cash(%s) is ignored", cash)
            return
        super().add_cash(cash)

    def new_client_order_id(self) -> str:
        """A fresh client order id for this exchange (override to add a prefix of your own)."""
        return new_client_order_id()

    # --- pre-trade checks ------------------------------------------------------------------------

    def submit(self, order: bt.Order, check: bool = True) -> bt.Order:
        reason = self.history_veto(order) or self.pre_trade_veto(order)
        if reason is not None and self.paper:
            return self.refuse(order, reason)  # a bracket goes whole or not at all
        if reason is not None:
            order.addinfo(reject_reason=reason)
            order.reject(self)
            self.notify(order)
            if self._live is not None:
                self._live.discard_untransmitted(order)  # a bracket goes whole or not at all
            return order
        if self._live is not None:
            return self._live.submit(order)
        if not self.paper:
            raise ConfigurationError("the live broker is not started; cerebro.run() starts it")
        return super().submit(order, check)

    def history_veto(self, order: bt.Order) -> str | None:
        """Why ``order`` must not go: it was created on a history bar, before its data's first
        LIVE bar (history warms indicators up, it never trades at today's prices). A paper run
        on ``historical=True`` data is a backtest and trades as one."""
        data = order.data
        while data is not None and not hasattr(data, "live_started"):
            data = getattr(getattr(data, "p", None), "dataname", None)  # a resampled or replayed clone
            if not hasattr(data, "p"):
                return None  # not a realtrade feed: nothing to tell history from live
        if data is None or data.live_started or (self.paper and data.p.historical):
            return None
        if not self._history_warned:
            self._history_warned = True
            log.warning("orders created before the first live bar are not sent: history bars warm indicators up, "
                        "they never trade (the order ends Rejected with this reason)")  # fmt: skip
            self.p.store.put_notification("orders created on history bars are rejected: they never trade")
        return (f"created on a history bar of {data._name} (before its first LIVE bar): history bars warm "
                f"indicators up, they never trade")  # fmt: skip

    def pre_trade_veto(self, order: bt.Order) -> str | None:
        """The first pre-trade veto's reason for ``order``, or None when it may go."""
        from .host import get_plugin_host

        data = order.data
        store = self.p.store
        request = OrderRequest(
            exchange=store.exchange or "",
            symbol=getattr(data, "_symbol", data._name),
            side="buy" if order.isbuy() else "sell",
            type=_ORDER_TYPES.get(order.exectype, "market"),
            amount=abs(order.created.size),
            price=order.created.price,
            client_order_id=order.info.get("client_order_id") or self.new_client_order_id(),
            venue=store.venue,
            paper=self.paper,
        )
        order.addinfo(client_order_id=request.client_order_id)
        vetoes = get_plugin_host().pre_trade(request)
        if vetoes:
            return "; ".join(f"{v.reason} ({v.source})" if v.source else v.reason for v in vetoes)
        return None
