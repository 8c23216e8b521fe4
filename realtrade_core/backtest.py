"""Backtrader's BackBroker with an exchange's rules: the paper broker's engine, for any backtest.

Two things make a simulation behave like the exchange, and both live here so that a plain
backtest and paper trading share them:

- **Once per bar.** BackBroker does its work (accept orders, try to fill them) whenever cerebro
  calls ``broker.next()``. A backtest calls it once per bar; a live cerebro also calls it
  between bars, while it waits for the next one. BackBroker only stops Market and Close orders
  from filling on the bar that created them (``data.datetime[0] <= order.created.dt`` in
  ``_try_exec_market`` / ``_try_exec_close``); a Limit, Stop, StopLimit or trailing order, and
  the exits of a bracket whose entry just filled (``_toactivate``), would be tried again
  against the bar already seen. :class:`ExchangeRulesMixin` runs BackBroker's ``next`` only when
  some data has a new bar, and never tries an order against the bar that created it.
- **The market's rules** (:class:`~realtrade_core.rules.MarketRules`): sizes rounded down to the
  lot step, prices to the tick, minimum amount and notional, spot sells limited to what is
  held, fees charged in the asset the exchange charges them in (:class:`ExchangeCommission`).
  A refused order ends Rejected, or Margin when it is money that is missing, with the reason in
  ``order.info.reject_reason``.

Positions count filled amounts, as in any backtest; a fee taken in the coin is commission
(valued in the quote at the fill price). A spot sell never sells more than the position (no
short selling: Margin). The coins really held are tracked beside the position: an exit that
asks for more than is held (by no more than those fees, then) sells what is held, rounded down
to the lot step, and closes the position, saying so as the live broker does:
``order.info.fee_adjusted`` True, ``asked`` and ``sent`` (amounts) and a ``note``. The sub-step
rest is dust (``order.info.dust``), never a position.

Use it in a backtest::

    import realtrade_core as rt

    cerebro.broker = rt.ExchangeBackBroker(rules=rt.MarketRules.from_ccxt_market(market), cash=10_000)
    cerebro.broker = store.backtest_broker("BTC/USDT", cash=10_000)   # the same, from a store

or only the fee side and currency, on backtrader's own broker:
``cerebro.broker.addcommissioninfo(rt.ExchangeCommission(rules=rules))``.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import backtrader as bt

from .perpetual import FundingPayment, FundingRates
from .rules import MarketRules, to_decimal

__all__ = ["ExchangeBackBroker", "ExchangeCommission", "ExchangeRulesMixin", "LotSizing", "PerpetualCommission"]

_ZERO = Decimal(0)
_PRICED = {
    bt.Order.Limit: "price",
    bt.Order.Stop: "price",
    bt.Order.StopLimit: "pricelimit",
    bt.Order.StopTrail: "price",
    bt.Order.StopTrailLimit: "pricelimit",
}
#: Orders BackBroker itself keeps off their creation bar (or that are not orders of the market).
_SELF_GUARDED = (bt.Order.Market, bt.Order.Close, bt.Order.Historical)


def _dec(value: float) -> Decimal:
    return to_decimal(float(value), "size")


_EPOCH_NUM = bt.date2num(datetime(1970, 1, 1))


def _bar_ms(num: float) -> int:
    """A backtrader date number (UTC) as ms since the epoch."""
    return round((num - _EPOCH_NUM) * 86_400_000)


def _position(broker: Any, data: Any) -> Decimal:
    # Rounded: backtrader sums sizes in floats (0.01 + 0.02 is 0.030000000000000002).
    return to_decimal(round(float(broker.getposition(data).size), 12), "position")


class LotSizing:
    """Sizes in the market's lot steps where backtrader sizes in whole units.

    ``order_target_value`` and ``order_target_percent`` ask the commission scheme how much
    ``cash`` buys at ``price`` (``getsize``); backtrader answers in whole units, which on a coin
    worth thousands is 0, so the target orders nothing. A spot market trades in lot steps: the
    answer here is ``cash / price`` rounded down to the step (the amount the exchange would
    accept). Mix in before ``bt.CommInfoBase``; ``amount_step`` is a Decimal or None (any amount).
    """

    amount_step: Decimal | None = None

    def getsize(self, price: float, cash: float) -> float:
        if not price or price != price or not cash > 0:
            return 0.0
        amount = to_decimal(cash, "cash") / to_decimal(price, "price")
        step = self.amount_step
        if step is not None:
            amount = (amount // step) * step
        return float(amount)


class SpotCommission(LotSizing, bt.CommInfoBase):
    """A percentage fee on the quote value, with sizes in ``amount_step`` lots (the live broker's
    scheme: the exchange itself charges the fee)."""

    params = (("commission", 0.0), ("percabs", True), ("stocklike", True), ("step", None))

    def __init__(self) -> None:
        super().__init__()
        self.amount_step = to_decimal(self.p.step, "lot step") if self.p.step is not None else None


class ExchangeCommission(LotSizing, bt.CommInfoBase):
    """A spot exchange's commission: each fill pays the fee the exchange charges for it.

    ``rules`` (a :class:`~realtrade_core.rules.MarketRules`) says which asset the fee is taken
    in and the taker rate; ``commission`` overrides the rate (a fraction: 0.001 is 0.1 %). The
    commission backtrader books is the fee valued in the quote at the fill price: a buy of
    0.01 BTC at 60,000 with the fee in BTC costs 0.00001 BTC, i.e. 0.60 USDT.
    """

    params = (
        ("rules", None),
        ("commission", None),
        ("stocklike", True),
        ("commtype", bt.CommInfoBase.COMM_PERC),
        ("percabs", True),
    )

    def __init__(self) -> None:
        if not isinstance(self.p.rules, MarketRules):
            raise TypeError("ExchangeCommission needs rules=MarketRules(...), e.g. MarketRules.from_ccxt_market(m)")
        super().__init__()
        self.rate = to_decimal(self.p.commission, "commission") if self.p.commission is not None else self.p.rules.taker
        if not _ZERO <= self.rate < 1:
            raise ValueError(f"commission must be a fraction in [0, 1) (0.001 is 0.1 %), got {self.p.commission!r}")
        # Set by the broker around one execution: the amount the exchange really trades when it
        # differs from the position's (an exit sized down to what is held).
        self.exchange_amount: Decimal | None = None

    @property
    def rules(self) -> MarketRules:
        return self.p.rules

    @property
    def amount_step(self) -> Decimal | None:  # type: ignore[override]
        return self.p.rules.amount_step

    def fee(self, side: str, amount: Any, price: Any) -> Any:
        """The exchange's :class:`~realtrade_core.rules.Fee` for one fill."""
        return self.p.rules.fee(side, amount, price, rate=self.rate)

    def _getcommission(self, size: float, price: float, pseudoexec: bool) -> float:
        if not size or not price:
            return 0.0
        side = "buy" if size > 0 else "sell"
        amount = self.exchange_amount if self.exchange_amount is not None else abs(_dec(size))
        return float(self.fee(side, amount, _dec(price)).cost)


class PerpetualCommission(LotSizing, bt.CommInfoBase):
    """The commission scheme of a linear perpetual contract (see the module docstring).

    Parameters:

    - ``rules`` (a :class:`~realtrade_core.rules.MarketRules`, optional): lot step and the
      taker fee; ``commission`` overrides the fee rate (a fraction: 0.0005 is 0.05 %).
    - ``leverage`` (1): initial margin is the position's value divided by it.
    - ``mult`` (1): the contract size (ccxt's ``contractSize``); 1 for USDT contracts.
    - ``funding`` (None): the market's :class:`FundingRates` (or anything it accepts); None
      pays no funding.
    - ``symbol``: the market, for :class:`FundingPayment` records (default: the rules' symbol).

    backtrader's own ``leverage`` parameter is left at 1: its broker divides only long
    positions' value by it; the margin here carries the leverage instead, for both sides.
    """

    params = (
        ("rules", None),
        ("commission", None),
        ("leverage", 1.0),
        ("funding", None),
        ("symbol", None),
        ("mult", 1.0),
        ("stocklike", False),
        ("commtype", bt.CommInfoBase.COMM_PERC),
        ("percabs", True),
        ("margin", None),
        ("automargin", False),
    )

    def __init__(self) -> None:
        rules = self.p.rules
        if rules is not None and not isinstance(rules, MarketRules):
            raise TypeError("PerpetualCommission takes rules=MarketRules(...) (or none)")
        leverage = self.p.leverage
        if isinstance(leverage, bool) or not isinstance(leverage, (int, float)) or not 0 < leverage <= 1000:
            raise ValueError(f"leverage must be a number above 0 (e.g. 3 for 3x), got {leverage!r}")
        if not (isinstance(self.p.mult, (int, float)) and self.p.mult > 0):
            raise ValueError(f"mult (the contract size) must be a positive number, got {self.p.mult!r}")
        self.contract_leverage = float(leverage)
        if self.p.commission is not None:
            rate = to_decimal(self.p.commission, "commission")
        else:
            rate = rules.taker if rules is not None else Decimal(0)
        if not Decimal(0) <= rate < 1:
            raise ValueError(f"commission must be a fraction in [0, 1) (0.0005 is 0.05 %), got {self.p.commission!r}")
        self.rate = rate
        self.p.commission = float(rate)
        self.p.leverage = 1.0  # backtrader's: see the class docstring
        super().__init__()
        funding = self.p.funding
        self.funding = funding if funding is None or isinstance(funding, FundingRates) else FundingRates(funding)
        self.symbol = self.p.symbol or (rules.symbol if rules is not None else "")

    @property
    def amount_step(self) -> Decimal | None:  # type: ignore[override]
        return self.p.rules.amount_step if self.p.rules is not None else None

    def get_margin(self, price: float) -> float:
        return abs(price) * self.p.mult / self.contract_leverage

    def getsize(self, price: float, cash: float) -> float:
        """Contracts ``cash`` margins at ``price`` (with leverage), down to the lot step."""
        if not price or price != price:
            return 0.0
        return super().getsize(price * self.p.mult / self.contract_leverage, cash)

    def _getcommission(self, size: float, price: float, pseudoexec: bool) -> float:
        return abs(size) * abs(price) * self.p.mult * float(self.rate)

    def funding_payment(self, size: float, mark: float, rate: float) -> float:
        """What a position of ``size`` gets (positive) or pays (negative) at ``rate``."""
        return -size * mark * self.p.mult * rate

    def margin_correction(self, position: Any, price: float) -> float:
        """backtrader values a position's margin at ``price``; it was locked at the entry price."""
        if not position.size:
            return 0.0
        return abs(position.size) * (position.price - price) * self.p.mult / self.contract_leverage


class ExchangeRulesMixin:
    """Once-per-bar execution and a market's rules on top of backtrader's BackBroker.

    Mix in before ``bt.brokers.BackBroker``; subclasses say where the rules come from by
    overriding :meth:`rules_for` (None: no rules for that data, BackBroker's behaviour apart
    from the once-per-bar gate).
    """

    # --- where rules come from (override) ------------------------------------------------------

    def rules_for(self, data: Any) -> MarketRules | None:
        return None

    # --- state -------------------------------------------------------------------------------------

    def init(self) -> None:
        super().init()  # type: ignore[misc]
        self._bar_seen: tuple | None = None
        self._held: dict[Any, Decimal] = collections.defaultdict(Decimal)  # coins in the account, per data
        self._coin_fees: dict[Any, Decimal] = collections.defaultdict(Decimal)  # fees in the coin since opening
        self._cash_quote: str | None = None  # the one currency backtrader's cash is in
        self._funding_from: dict[Any, int] = {}  # per data: the bar close funding was settled up to
        #: every funding settlement of a perpetual position (:class:`~realtrade_core.perpetual.FundingPayment`)
        self.funding_payments: list[Any] = []

    def held(self, data: Any) -> Decimal:
        """The coins of ``data``'s market the simulated account holds (the position less the
        fees charged in the coin, plus any dust)."""
        return self._held[data]

    # --- (a) once per bar, never on the creation bar ---------------------------------------------

    def _bar_stamp(self) -> tuple:
        cerebro = getattr(self, "cerebro", None)
        datas = getattr(cerebro, "datas", None) or ()
        stamp = []
        for d in datas:
            n = len(d)
            if not n:
                stamp.append((0,))
                continue
            # A replayed bar keeps its length while it grows: its prices tell the ticks apart.
            stamp.append((n, d.datetime[0], d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0]))
        return tuple(stamp)

    def next(self) -> None:
        stamp = self._bar_stamp()
        if stamp and stamp == self._bar_seen:
            return  # cerebro waits for a bar: this bar was already processed, as a backtest does once
        self._bar_seen = stamp
        self._settle_funding()
        super().next()  # type: ignore[misc]

    # --- perpetual contracts: funding and margin -------------------------------------------------

    def _settle_funding(self) -> None:
        """Pay or collect the funding due since each perpetual data's last bar, on the position
        held before this bar's orders execute, at this bar's open (see
        :mod:`realtrade_core.perpetual`)."""
        for data in getattr(getattr(self, "cerebro", None), "datas", None) or ():
            if not len(data):
                continue
            comminfo = self.getcommissioninfo(data)  # type: ignore[attr-defined]
            funding = getattr(comminfo, "funding", None)
            if funding is None or not hasattr(comminfo, "funding_payment"):
                continue
            close_ms = _bar_ms(data.datetime[0])
            since = self._funding_from.get(data)
            if since is not None and close_ms <= since:
                continue
            self._funding_from[data] = close_ms
            size = self.positions[data].size  # type: ignore[attr-defined]
            if since is None or not size:
                continue
            mark = float(data.open[0])
            for when, rate in funding.due(since, close_ms):
                amount = comminfo.funding_payment(size, mark, rate)
                self.cash += amount  # type: ignore[attr-defined]
                payment = FundingPayment(when, comminfo.symbol or getattr(data, "_name", ""), size, mark, rate, amount)
                self.funding_payments.append(payment)
                self.on_funding(data, payment)

    def on_funding(self, data: Any, payment: Any) -> None:
        """Called with each funding :class:`~realtrade_core.perpetual.FundingPayment` once it is
        in cash (the paper broker tells the strategy)."""

    def _get_value(self, datas: Any = None, lever: bool = False) -> float:
        value = super()._get_value(datas=datas, lever=lever)  # type: ignore[misc]
        correction = 0.0
        for data in datas or self.positions:  # type: ignore[attr-defined]
            comminfo = self.getcommissioninfo(data)  # type: ignore[attr-defined]
            if hasattr(comminfo, "margin_correction"):
                correction += comminfo.margin_correction(self.positions[data], data.close[0])  # type: ignore[attr-defined]
        if not correction:
            return value
        if not (datas and len(datas) == 1):
            # backtrader values a margined position at its margin at the current price; the
            # margin locked is the entry price's, and the price move is in cash already.
            self._value += correction  # type: ignore[has-type]
            self._valuelever += correction  # type: ignore[has-type]
            if not self._fundhist:  # type: ignore[attr-defined]
                self._fundval = self._value / self._fundshares  # type: ignore[attr-defined]
        return value + correction

    def _try_exec(self, order: bt.Order) -> None:
        if order.exectype not in _SELF_GUARDED and order.data.datetime[0] <= order.created.dt:
            return  # the bar that created it is already over
        super()._try_exec(order)  # type: ignore[misc]

    # --- (b) the market's rules at submission ------------------------------------------------------

    def submit(self, order: bt.Order, check: bool = True) -> bt.Order:
        parent = order.parent
        if parent is not None and getattr(parent, "ref", None) not in self._pchildren:  # type: ignore[attr-defined]
            reason = parent.info.get("reject_reason") if hasattr(parent, "info") else None
            order.addinfo(reject_reason=f"its bracket's parent order was refused: {reason}" if reason
                          else "its bracket's parent order was refused")  # fmt: skip
        elif order.exectype != bt.Order.Historical:
            rules = self.rules_for(order.data)
            if rules is not None:
                refused = self._apply_rules(order, rules)
                if refused is not None:
                    reason, margin = refused
                    return self.refuse(order, reason, margin=margin)
        return super().submit(order, check)  # type: ignore[misc]

    def refuse(self, order: bt.Order, reason: str, *, margin: bool = False) -> bt.Order:
        """End ``order`` Rejected (Margin when money is missing) with ``reason``; a bracket it
        belongs to goes with it, whole or not at all."""
        order.addinfo(reject_reason=reason)
        if margin:
            order.margin()
        else:
            order.reject(self)
        self.notify(order)  # type: ignore[attr-defined]
        self._drop_bracket(order, reason)
        return order

    def _drop_bracket(self, order: bt.Order, reason: str) -> None:
        parent = order.parent
        pref = getattr(parent, "ref", order.ref)
        members = self._pchildren.pop(pref, None)  # type: ignore[attr-defined]
        for member in members or ():
            if member is order or not member.alive():
                continue
            member.addinfo(reject_reason=f"another order of its bracket was refused: {reason}")
            member.reject(self)
            self.notify(member)  # type: ignore[attr-defined]

    def _spot_exit(self, order: bt.Order, rules: MarketRules, amount: Decimal) -> tuple[Any, str | None]:
        """What a spot sell of ``amount`` may sell (an :class:`~realtrade_core.rules.ExitAmount`),
        or why it may not: beyond the position it would sell coins the strategy did not buy."""
        data = order.data
        position = _position(self, data)
        if amount > max(position, _ZERO):
            holds = f"holds {position.normalize():f} {rules.base}" if position > 0 else f"holds no {rules.base}"
            return None, (f"selling {amount.normalize():f} {rules.base} would sell coins this strategy did not buy: "
                          f"its position {holds} (spot: no short selling)")  # fmt: skip
        exit_ = rules.exit_amount(amount, self._held[data], self._coin_fees[data])
        return exit_, exit_.reason

    def _first_quote(self) -> str | None:
        """The quote currency of the first data with rules: the one backtrader's cash is in."""
        for data in getattr(getattr(self, "cerebro", None), "datas", None) or ():
            rules = self.rules_for(data)
            if rules is not None and rules.quote:
                return rules.quote
        return None

    def _apply_rules(self, order: bt.Order, rules: MarketRules) -> tuple[str, bool] | None:
        """Round ``order`` to the market's step and tick and check it; (reason, margin) if refused."""
        side = "buy" if order.isbuy() else "sell"
        if rules.quote:
            if self._cash_quote is None:
                self._cash_quote = getattr(self.p, "currency", None) or self._first_quote() or rules.quote
            if rules.quote != self._cash_quote:
                # backtrader keeps one cash: a trade in another quote would move it in the wrong unit.
                return (f"this broker keeps its cash in {self._cash_quote}; {rules.symbol} is quoted in {rules.quote}: "
                        f"trade it live (the ledger keeps cash per quote currency) or with a broker of its own",
                        False)  # fmt: skip
        requested = abs(_dec(order.created.size))
        amount = rules.round_amount(requested)
        if amount != requested:
            signed = float(amount) if order.isbuy() else -float(amount)
            order.size = order.created.size = order.executed.remsize = signed
            order.addinfo(requested_size=float(requested))
        field = _PRICED.get(order.exectype)
        if field is not None and order.exectype not in (bt.Order.StopTrail, bt.Order.StopTrailLimit):
            # Trailing orders move their price every bar; only their first one is checked.
            for name in ("price", "pricelimit") if order.exectype == bt.Order.StopLimit else ("price",):
                value = getattr(order.created, name)
                if value:
                    rounded = float(rules.round_price(value))
                    setattr(order.created, name, rounded)
                    setattr(order, name, rounded)
        if amount == 0:
            return (f"{side} size {requested.normalize():f} {rules.base} rounds down to 0 at {rules.symbol}'s "
                    f"lot step {(rules.amount_step or _ZERO).normalize():f} {rules.base}", False)  # fmt: skip
        reference = getattr(order.created, field) if field is not None else order.data.close[0]
        if not reference or reference != reference or abs(reference) == float("inf"):
            reference = order.data.close[0]
        reference = rules.round_price(reference)
        sent = amount
        if side == "sell" and rules.spot and order.parent is None:
            # A bracket's exits are checked when they can fill, once their entry has.
            exit_, reason = self._spot_exit(order, rules, amount)
            if reason is not None:
                return reason, True
            sent = exit_.amount
        reason = rules.check(side, sent, reference)
        return (reason, False) if reason is not None else None

    # --- (b) the market's rules at execution ----------------------------------------------------

    def _execute(self, order: bt.Order, ago: Any = None, price: Any = None, cash: Any = None,
                 position: Any = None, dtcoc: Any = None) -> Any:  # fmt: skip
        if ago is None or price is None:
            return super()._execute(order, ago=ago, price=price, cash=cash, position=position, dtcoc=dtcoc)  # type: ignore[misc]
        data = order.data
        rules = self.rules_for(data)
        if rules is None:
            return super()._execute(order, ago=ago, price=price, cash=cash, position=position, dtcoc=dtcoc)  # type: ignore[misc]
        comminfo = self.getcommissioninfo(data)  # type: ignore[attr-defined]
        exchange = comminfo if isinstance(comminfo, ExchangeCommission) else None
        sell = order.issell()
        remaining = abs(_dec(order.executed.remsize))
        exit_ = None
        if sell and rules.spot:
            exit_, reason = self._spot_exit(order, rules, remaining)
            if reason is not None:
                # The coins are not there: the exchange would refuse it (a spot account cannot
                # sell what it does not hold), as backtrader refuses a buy it cannot pay for.
                order.addinfo(reject_reason=reason)
                order.margin()
                self.notify(order)  # type: ignore[attr-defined]
                self._ococheck(order)  # type: ignore[attr-defined]
                self._bracketize(order, cancel=True)  # type: ignore[attr-defined]
                return None
            if exit_.sized_down:
                order.addinfo(fee_adjusted=True, asked=float(remaining), sent=float(exit_.amount),
                              note=(f"sent {exit_.amount.normalize():f} of the {remaining.normalize():f} {rules.base} "
                                    f"asked: the exchange took {self._coin_fees[data].normalize():f} {rules.base} of "
                                    f"the position as fees; it closes the position"))  # fmt: skip
            if exit_.closes:
                position = _position(self, data)
                if remaining < position:
                    # What is held goes, so the whole position closes (as live), not just what was asked.
                    order.size = order.created.size = order.executed.remsize = -float(position)
                    remaining = position
        before = order.executed.size
        if exchange is not None and exit_ is not None and exit_.amount != remaining:
            exchange.exchange_amount = exit_.amount  # the sell fee is on what is really sold
        try:
            result = super()._execute(order, ago=ago, price=price, cash=cash, position=position, dtcoc=dtcoc)  # type: ignore[misc]
        finally:
            if exchange is not None:
                exchange.exchange_amount = None
        filled = abs(_dec(order.executed.size - before))
        if filled:
            self._book_fill(order, rules, exchange, filled, remaining, exit_, _dec(price))
        return result

    def _book_fill(self, order: bt.Order, rules: MarketRules, exchange: ExchangeCommission | None,
                   filled: Decimal, remaining: Decimal, exit_: Any, price: Decimal) -> None:  # fmt: skip
        """Follow the coins really held after a fill of ``filled`` (of ``remaining``)."""
        data = order.data
        if order.isbuy():
            fee = exchange.fee("buy", filled, price) if exchange is not None else None
            in_coin = fee.amount if fee is not None and fee.in_base else _ZERO
            self._held[data] += filled - in_coin
            self._coin_fees[data] += in_coin
        else:
            sold = filled
            if exit_ is not None:
                sold = exit_.amount if filled == remaining else (exit_.amount * filled / remaining)
            fee = exchange.fee("sell", sold, price) if exchange is not None else None
            in_coin = fee.amount if fee is not None and fee.in_base else _ZERO
            self._held[data] -= sold + in_coin
            self._coin_fees[data] += in_coin
        if not self.getposition(data).size:  # type: ignore[attr-defined]
            self._coin_fees[data] = _ZERO  # the fees went with the position they came out of
            dust = self._held[data]
            if dust > 0:
                order.addinfo(dust=float(dust))


class ExchangeBackBroker(ExchangeRulesMixin, bt.brokers.BackBroker):
    """BackBroker that refuses, sizes and charges orders as the exchange would.

    Parameters beyond BackBroker's (``cash``, ``checksubmit``, ...):

    - ``rules``: a :class:`~realtrade_core.rules.MarketRules` for every data, or a mapping
      data name -> MarketRules (datas without an entry trade without rules).
    - ``commission`` (None): the fee rate as a fraction; None is each market's taker fee.
    - ``leverage`` (1) and ``funding`` (None): for perpetual contracts (rules with
      ``perpetual=True``), the leverage their margin is taken at and their funding rates (a
      :class:`~realtrade_core.perpetual.FundingRates` or anything it accepts, or a mapping data
      name -> rates); see :mod:`realtrade_core.perpetual`. Funding settlements are listed in
      ``broker.funding_payments``.

    Datas with rules pay an :class:`ExchangeCommission` or, for a perpetual contract, a
    :class:`~realtrade_core.perpetual.PerpetualCommission` (one set of rules: the default scheme; a
    mapping: one per data name) unless a commission was set for them
    (``broker.addcommissioninfo(..., name=...)``), which then wins.
    """

    params = (("rules", None), ("commission", None), ("leverage", 1.0), ("funding", None))

    def __init__(self) -> None:
        self._fee_set: set[Any] = set()
        rules = self.p.rules
        if isinstance(rules, MarketRules):
            markets = [rules]
        elif isinstance(rules, Mapping):
            markets = list(rules.values())
        else:
            markets = []
        if self.p.leverage != 1.0 and not any(getattr(m, "perpetual", False) for m in markets):
            raise ValueError("leverage applies to perpetual markets: give rules of a perpetual contract "
                             "(MarketRules.from_ccxt_market(store.market('BTC/USDT:USDT')))")  # fmt: skip
        if rules is not None and not isinstance(rules, (MarketRules, Mapping)):
            raise TypeError("rules must be a MarketRules or a mapping data name -> MarketRules, "
                            f"got {type(rules).__name__}")  # fmt: skip
        if isinstance(rules, Mapping):
            bad = [k for k, v in rules.items() if not isinstance(v, MarketRules)]
            if bad:
                raise TypeError(f"rules for {bad} are not MarketRules")
        super().__init__()

    @classmethod
    def from_market(cls, market: dict[str, Any], precision_mode: int = 4, **kwargs: Any) -> ExchangeBackBroker:
        """A broker with the rules of a ccxt market record; ``kwargs`` are its parameters."""
        return cls(rules=MarketRules.from_ccxt_market(market, precision_mode=precision_mode), **kwargs)

    def init(self) -> None:
        # BrokerBase.init makes ``p.commission`` the default commission scheme; here that
        # parameter is a fee rate, so the default is set first: the market's own fee when one
        # set of rules serves every data, else backtrader's default (no commission).
        if None not in self.comminfo:
            rules = self.p.rules
            if isinstance(rules, MarketRules):
                self.comminfo[None] = self.scheme_for(rules, None)
            else:
                self.comminfo[None] = bt.CommInfoBase(percabs=True)
        super().init()

    def rules_for(self, data: Any) -> MarketRules | None:
        rules = self.p.rules
        if rules is None or isinstance(rules, MarketRules):
            return rules
        return rules.get(getattr(data, "_name", None))

    def getcommissioninfo(self, data: Any) -> Any:
        rules = self.p.rules
        name = getattr(data, "_name", None)
        if isinstance(rules, Mapping) and name and name not in self._fee_set:
            self._fee_set.add(name)
            if name in rules and name not in self.comminfo:
                self.addcommissioninfo(self.scheme_for(rules[name], name), name=name)
        return super().getcommissioninfo(data)

    def scheme_for(self, rules: MarketRules, name: str | None) -> Any:
        """The commission scheme of one market: a perpetual contract's margin, fee and funding
        (:class:`~realtrade_core.perpetual.PerpetualCommission`), or a spot market's fee."""
        if not rules.perpetual:
            return ExchangeCommission(rules=rules, commission=self.p.commission)
        funding = self.p.funding
        if isinstance(funding, Mapping) and funding and all(isinstance(k, str) for k in funding):
            funding = funding.get(name) if name is not None else None  # one series per data name
        return PerpetualCommission(rules=rules, commission=self.p.commission, leverage=self.p.leverage,
                                   funding=funding, mult=float(rules.contract_size), symbol=rules.symbol)  # fmt: skip
