"""Market rules: an exchange's lot step, tick, minimums and fee side for one market, in Decimal.

One :class:`MarketRules` describes what an exchange accepts for a market and how it charges
fees. Paper trading applies it to every order, a backtest can be given the same rules
(:class:`~realtrade_core.backtest.ExchangeBackBroker`), and a live broker can check and size
orders with it before sending, so all three refuse and size the same orders the same way::

    rules = MarketRules.from_ccxt_market(store.market("BTC/USDT"))   # or MarketRules.from_store(store, "BTC/USDT")
    amount = rules.round_amount(0.0123456)              # Decimal('0.01234') at a lot step of 0.00001 (down)
    price = rules.round_price(60123.456)                # Decimal('60123.46'): to the nearest tick
    rules.check("buy", amount, price)                   # None, or why the exchange would refuse it
    rules.fee("buy", amount, price)                     # Fee(amount=..., currency='BTC', cost=... in USDT)
    rules.exit_amount(requested, held, coin_fees)       # how much of a position an exit may sell

Every method takes numbers as ``Decimal``, ``int``, ``str`` or ``float`` (a float is read by its
shortest repr, so ``0.1`` is ``Decimal('0.1')``) and returns ``Decimal``. Reasons are plain
sentences naming the rule, the size and the limit, for ``order.info.reject_reason``.

Fees, as ccxt's ``feeSide`` says: ``"get"`` (Binance and Bybit spot) charges the asset received,
so a buy pays its fee in the base coin (buying 0.01 BTC at 0.1 % leaves 0.00999 BTC) and a sell
in the quote; ``"give"`` charges the asset spent; ``"base"`` / ``"quote"`` always that asset.
:meth:`MarketRules.fee` gives the fee in its own asset, rounded down to that asset's precision
as exchanges do, and its ``cost``: the same fee valued in the quote at the fill price, which is
what a backtrader commission is.

Exits and fees in the coin (DESIGN.md §5a): a position counts filled amounts, as a backtest
does, so after a buy whose fee was paid in the coin the account holds a little less than the
position. :meth:`MarketRules.exit_amount` sizes an exit to what is held when it asks for more
only by such fees (rounded down to the lot step); a larger shortfall is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

__all__ = ["FEE_SIDES", "ExitAmount", "Fee", "MarketRules", "to_decimal"]

#: ccxt's ``feeSide`` values: the asset a fee is charged in.
FEE_SIDES = ("get", "give", "base", "quote", "other")

# ccxt precision modes (ccxt.DECIMAL_PLACES, ccxt.SIGNIFICANT_DIGITS, ccxt.TICK_SIZE), spelled
# out so reading a market needs no ccxt import.
DECIMAL_PLACES = 2
SIGNIFICANT_DIGITS = 3
TICK_SIZE = 4

_EIGHT_DECIMALS = Decimal("1e-8")
_ZERO = Decimal(0)


def to_decimal(value: Any, what: str = "value") -> Decimal:
    """``value`` as a finite Decimal; floats by their shortest repr. ValueError names ``what``."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool):
        raise ValueError(f"{what} must be a number, got {value!r}")
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, (int, str)):
        try:
            result = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"{what} must be a number, got {value!r}") from None
    else:
        raise ValueError(f"{what} must be a number, got {value!r}")
    if not result.is_finite():
        raise ValueError(f"{what} must be finite, got {value!r}")
    return result


def _optional(value: Any, what: str) -> Decimal | None:
    if value is None:
        return None
    result = to_decimal(value, what)
    return result if result > 0 else None


def _increment(value: Any, mode: int, what: str) -> Decimal | None:
    """A ccxt precision value as an increment: TICK_SIZE gives it as is, DECIMAL_PLACES as a
    digit count (2 -> 0.01). Significant digits have no fixed increment (None)."""
    if value is None:
        return None
    if mode == DECIMAL_PLACES:
        places = int(to_decimal(value, what))
        return Decimal(1).scaleb(-places)
    if mode == SIGNIFICANT_DIGITS:
        return None
    return _optional(value, what)


def _fmt(value: Decimal) -> str:
    """A Decimal as people write it: 0.00001, 60000, not 1E-5 or 6.0E+4."""
    return format(value.normalize(), "f")


def _floor(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


@dataclass(frozen=True)
class Fee:
    """One fill's fee: ``amount`` of ``currency`` charged, worth ``cost`` in the quote."""

    amount: Decimal
    currency: str
    cost: Decimal
    in_base: bool  # charged in the base coin: the account holds that much less than it bought


@dataclass(frozen=True)
class ExitAmount:
    """What an exit may sell: ``amount`` (Decimal); whether it was ``sized_down`` to what is held;
    whether it ``closes`` the position (it sells all that is held, to the lot step); the ``dust``
    that leaves behind (held coins below the lot step); ``reason`` when it may not go."""

    amount: Decimal
    sized_down: bool = False
    dust: Decimal = _ZERO
    reason: str | None = None
    closes: bool = False


@dataclass(frozen=True)
class MarketRules:
    """What an exchange accepts for one market and how it charges fees.

    ``amount_step`` (lot step), ``price_tick``, ``min_amount``, ``max_amount``, ``min_notional``,
    ``max_notional``, ``min_price`` and ``max_price`` are Decimals or None (no such rule).
    ``taker`` / ``maker`` are fee rates; ``fee_side`` is ccxt's ``feeSide``; ``spot`` markets
    cannot sell what they do not hold; ``perpetual`` markets (linear contracts of
    ``contract_size`` coins each) trade on margin, long or short. ``base_precision`` /
    ``quote_precision`` are the increments fees are rounded down to (default 1e-8).
    """

    symbol: str
    base: str
    quote: str
    amount_step: Decimal | None = None
    price_tick: Decimal | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    min_notional: Decimal | None = None
    max_notional: Decimal | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    taker: Decimal = Decimal("0.001")
    maker: Decimal = Decimal("0.001")
    fee_side: str = "get"
    spot: bool = True
    base_precision: Decimal = field(default=_EIGHT_DECIMALS)
    quote_precision: Decimal = field(default=_EIGHT_DECIMALS)
    perpetual: bool = False  # a linear perpetual contract: traded on margin, either side
    contract_size: Decimal = Decimal(1)  # coins per contract (1 for USDT perpetuals)

    def __post_init__(self) -> None:
        if self.fee_side not in FEE_SIDES:
            raise ValueError(f"fee_side must be one of {', '.join(FEE_SIDES)}, got {self.fee_side!r}")
        for name in ("taker", "maker"):
            rate = getattr(self, name)
            if not isinstance(rate, Decimal) or not _ZERO <= rate < 1:
                raise ValueError(f"{name} fee rate must be a Decimal in [0, 1), got {rate!r}")

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def from_ccxt_market(cls, market: dict[str, Any], precision_mode: int = TICK_SIZE) -> MarketRules:
        """Rules from a ccxt market record (``exchange.markets["BTC/USDT"]``).

        ``precision_mode`` is the exchange's ``precisionMode`` (ccxt 4 uses ``TICK_SIZE`` for
        Binance, Bybit and most exchanges: ``precision.amount`` is the lot step itself; with
        ``DECIMAL_PLACES`` it is a number of decimals). Missing limits are no rule; missing fees
        are 0.1 %; ``feeSide`` defaults to ``"get"``, as ccxt does for spot markets.
        """
        if not isinstance(market, dict) or "symbol" not in market:
            raise ValueError("from_ccxt_market needs a ccxt market dict, e.g. exchange.markets['BTC/USDT']")
        symbol = str(market["symbol"])
        precision = market.get("precision") or {}
        limits = market.get("limits") or {}

        def limit(kind: str, end: str) -> Decimal | None:
            return _optional((limits.get(kind) or {}).get(end), f"{symbol} limits.{kind}.{end}")

        def rate(name: str) -> Decimal:
            value = market.get(name)
            return Decimal("0.001") if value is None else to_decimal(value, f"{symbol} {name} fee")

        fee_side = market.get("feeSide") or "get"
        if fee_side not in FEE_SIDES:
            fee_side = "quote"
        return cls(
            symbol=symbol,
            base=str(market.get("base") or symbol.split("/")[0]),
            quote=str(market.get("quote") or symbol.split("/")[-1].split(":")[0]),
            amount_step=_increment(precision.get("amount"), precision_mode, f"{symbol} precision.amount"),
            price_tick=_increment(precision.get("price"), precision_mode, f"{symbol} precision.price"),
            min_amount=limit("amount", "min"),
            max_amount=limit("amount", "max"),
            min_notional=limit("cost", "min"),
            max_notional=limit("cost", "max"),
            min_price=limit("price", "min"),
            max_price=limit("price", "max"),
            taker=rate("taker"),
            maker=rate("maker"),
            fee_side=fee_side,
            spot=bool(market.get("spot", market.get("type", "spot") == "spot")),
            base_precision=_increment(precision.get("base"), precision_mode, f"{symbol} precision.base")
            or _EIGHT_DECIMALS,
            quote_precision=_increment(precision.get("quote"), precision_mode, f"{symbol} precision.quote")
            or _EIGHT_DECIMALS,
            perpetual=bool(market.get("swap") and market.get("linear", True)),
            contract_size=_optional(market.get("contractSize"), f"{symbol} contractSize") or Decimal(1),
        )

    @classmethod
    def from_store(cls, store: Any, symbol: str) -> MarketRules:
        """Rules of ``symbol`` from a started (or startable) realtrade store's ccxt markets."""
        store.start()
        mode = getattr(store.client, "precisionMode", TICK_SIZE)
        return cls.from_ccxt_market(store.market(symbol), precision_mode=mode)

    # --- sizes and prices --------------------------------------------------------------------------

    def round_amount(self, amount: Any) -> Decimal:
        """``amount`` rounded *down* to the lot step (as ccxt's ``amount_to_precision``); sign kept."""
        value = to_decimal(amount, "amount")
        if self.amount_step is None:
            return value
        rounded = _floor(abs(value), self.amount_step)
        return -rounded if value < 0 else rounded

    def round_price(self, price: Any) -> Decimal:
        """``price`` rounded to the nearest tick (as ccxt's ``price_to_precision``)."""
        value = to_decimal(price, "price")
        if self.price_tick is None:
            return value
        return (value / self.price_tick).to_integral_value(rounding=ROUND_HALF_UP) * self.price_tick

    def check(self, side: str, amount: Any, price: Any | None) -> str | None:
        """Why the exchange would refuse ``side`` ``amount`` at ``price``, or None if it accepts.

        ``price`` is the order's limit price, else its stop price, else the last price (the
        value minimum notional is measured at); None skips the price rules. Checked in the
        exchanges' order: amount precision, minimum and maximum amount, price precision and
        range, minimum and maximum notional. Funds are not checked here.
        """
        if side not in ("buy", "sell"):
            raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
        size = abs(to_decimal(amount, "amount"))
        coin, cash = self.base, self.quote
        if size == 0:
            return f"{side} amount is 0 {coin}: nothing to send"
        if self.amount_step is not None and size % self.amount_step:
            return (f"{side} amount {_fmt(size)} {coin} is not a multiple of {self.symbol}'s lot step "
                    f"{_fmt(self.amount_step)} {coin}")  # fmt: skip
        if self.min_amount is not None and size < self.min_amount:
            return (f"{side} amount {_fmt(size)} {coin} is below {self.symbol}'s minimum amount "
                    f"{_fmt(self.min_amount)} {coin}")  # fmt: skip
        if self.max_amount is not None and size > self.max_amount:
            return (f"{side} amount {_fmt(size)} {coin} is above {self.symbol}'s maximum amount "
                    f"{_fmt(self.max_amount)} {coin}")  # fmt: skip
        if price is None:
            return None
        at = to_decimal(price, "price")
        if at <= 0:
            return f"{side} price {_fmt(at)} {cash} is not positive"
        if self.price_tick is not None and at % self.price_tick:
            return (f"{side} price {_fmt(at)} {cash} is not a multiple of {self.symbol}'s tick "
                    f"{_fmt(self.price_tick)} {cash}")  # fmt: skip
        if self.min_price is not None and at < self.min_price:
            return f"{side} price {_fmt(at)} {cash} is below {self.symbol}'s minimum price {_fmt(self.min_price)}"
        if self.max_price is not None and at > self.max_price:
            return f"{side} price {_fmt(at)} {cash} is above {self.symbol}'s maximum price {_fmt(self.max_price)}"
        value = size * at
        if self.min_notional is not None and value < self.min_notional:
            return (f"{side} value {_fmt(value)} {cash} ({_fmt(size)} {coin} at {_fmt(at)}) is below "
                    f"{self.symbol}'s minimum notional {_fmt(self.min_notional)} {cash}")  # fmt: skip
        if self.max_notional is not None and value > self.max_notional:
            return (f"{side} value {_fmt(value)} {cash} ({_fmt(size)} {coin} at {_fmt(at)}) is above "
                    f"{self.symbol}'s maximum notional {_fmt(self.max_notional)} {cash}")  # fmt: skip
        return None

    # --- fees ------------------------------------------------------------------------------------

    def fee_currency(self, side: str) -> str:
        """The asset a ``side`` fill's fee is charged in."""
        return self.base if self._fee_in_base(side) else self.quote

    def _fee_in_base(self, side: str) -> bool:
        if side not in ("buy", "sell"):
            raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
        if self.fee_side == "get":
            return side == "buy"
        if self.fee_side == "give":
            return side == "sell"
        return self.fee_side == "base"

    def fee(self, side: str, amount: Any, price: Any, *, maker: bool = False, rate: Any | None = None) -> Fee:
        """The fee of a ``side`` fill of ``amount`` at ``price``: taker (or ``maker``) rate unless
        ``rate`` is given; rounded down to the fee asset's precision."""
        size = abs(to_decimal(amount, "amount"))
        at = to_decimal(price, "price")
        fraction = to_decimal(rate, "fee rate") if rate is not None else (self.maker if maker else self.taker)
        if self._fee_in_base(side):
            charged = _floor(size * fraction, self.base_precision)
            return Fee(charged, self.base, charged * at, True)
        charged = _floor(size * at * fraction, self.quote_precision)
        return Fee(charged, self.quote, charged, False)

    # --- exits -------------------------------------------------------------------------------------

    def exit_amount(self, requested: Any, held: Any, coin_fees: Any = 0) -> ExitAmount:
        """How much a sell of ``requested`` may really sell when ``held`` coins are in the account
        and ``coin_fees`` of the position were charged in the coin.

        Up to what is held it goes as asked. Asking for more than is held by no more than
        ``coin_fees`` (the position counts filled amounts; the fees came out of the coin), it is
        sized down to what is held, rounded down to the lot step (``sized_down``; ``dust`` is
        what the rounding leaves). An exit that sells all that is held ``closes`` the position:
        what the position counts beyond it went in fees. Any larger shortfall gets a
        ``reason``: the exchange would refuse the order for want of the coin.
        """
        want = abs(to_decimal(requested, "requested amount"))
        have = max(to_decimal(held, "held amount"), _ZERO)
        fees = max(to_decimal(coin_fees, "coin fees"), _ZERO)
        everything = self.round_amount(have)
        if want <= have:
            closes = fees > 0 and want >= everything
            return ExitAmount(want, closes=closes, dust=have - want if closes else _ZERO)
        if want - have <= fees:
            return ExitAmount(everything, sized_down=True, dust=have - everything, closes=True)
        return ExitAmount(
            _ZERO,
            reason=(f"insufficient {self.base}: sell {_fmt(want)} {self.base} but {_fmt(have)} {self.base} is held"
                    + (f" (fees of {_fmt(fees)} {self.base} were charged in the coin)" if fees else "")),
        )  # fmt: skip

    def describe(self) -> str:
        """One line for logs and errors: lot step, tick, minimums and fees."""
        parts = [f"{self.symbol}:"]
        if self.amount_step is not None:
            parts.append(f"lot step {_fmt(self.amount_step)} {self.base}")
        if self.price_tick is not None:
            parts.append(f"tick {_fmt(self.price_tick)} {self.quote}")
        if self.min_amount is not None:
            parts.append(f"min amount {_fmt(self.min_amount)} {self.base}")
        if self.min_notional is not None:
            parts.append(f"min notional {_fmt(self.min_notional)} {self.quote}")
        parts.append(f"fees taker {_fmt(self.taker)} maker {_fmt(self.maker)} ({self.fee_side})")
        return " ".join(parts)
