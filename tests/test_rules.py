"""MarketRules: an exchange's lot step, tick, minimums and fee side, read from a ccxt market."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from realtrade_core.rules import DECIMAL_PLACES, ExitAmount, MarketRules

BTCUSDT = {
    "symbol": "BTC/USDT",
    "base": "BTC",
    "quote": "USDT",
    "spot": True,
    "precision": {"amount": 1e-05, "price": 0.01, "base": 1e-08, "quote": 1e-08},
    "limits": {"amount": {"min": 1e-05, "max": 9000.0}, "cost": {"min": 5.0, "max": None}, "price": {"min": 0.01}},
    "taker": 0.001,
    "maker": 0.0008,
    "feeSide": "get",
}


@pytest.fixture
def rules() -> MarketRules:
    return MarketRules.from_ccxt_market(BTCUSDT)


def test_rules_are_read_from_a_ccxt_market(rules):
    assert (rules.symbol, rules.base, rules.quote, rules.spot) == ("BTC/USDT", "BTC", "USDT", True)
    assert (rules.amount_step, rules.price_tick) == (D("0.00001"), D("0.01"))
    assert (rules.min_amount, rules.max_amount, rules.min_notional) == (D("0.00001"), D("9000.0"), D("5.0"))
    assert rules.max_notional is None
    assert (rules.taker, rules.maker, rules.fee_side) == (D("0.001"), D("0.0008"), "get")


def test_decimal_places_precision_is_turned_into_increments():
    market = {**BTCUSDT, "precision": {"amount": 5, "price": 2}}
    rules = MarketRules.from_ccxt_market(market, precision_mode=DECIMAL_PLACES)
    assert (rules.amount_step, rules.price_tick) == (D("0.00001"), D("0.01"))


def test_amounts_round_down_to_the_lot_step_and_prices_to_the_nearest_tick(rules):
    assert rules.round_amount(0.0123456) == D("0.01234")
    assert rules.round_amount(0.0123499) == D("0.01234")  # never up: the exchange would lack the coins
    assert rules.round_amount(-0.0123456) == D("-0.01234")
    assert rules.round_price(60123.456) == D("60123.46")
    assert rules.round_price(60123.454) == D("60123.45")


def test_check_names_the_rule_the_size_and_the_limit(rules):
    assert rules.check("buy", D("0.01"), D("60000")) is None
    assert rules.check("buy", D("0.000123"), D("60000")) == (
        "buy amount 0.000123 BTC is not a multiple of BTC/USDT's lot step 0.00001 BTC"
    )
    assert rules.check("sell", D("9001"), D("60000")) == (
        "sell amount 9001 BTC is above BTC/USDT's maximum amount 9000 BTC"
    )
    assert rules.check("buy", D("0.01"), D("60000.001")) == (
        "buy price 60000.001 USDT is not a multiple of BTC/USDT's tick 0.01 USDT"
    )
    assert rules.check("buy", D("0.00005"), D("60000")) == (
        "buy value 3 USDT (0.00005 BTC at 60000) is below BTC/USDT's minimum notional 5 USDT"
    )
    small = MarketRules.from_ccxt_market({**BTCUSDT, "limits": {"amount": {"min": 0.001}}})
    assert small.check("buy", D("0.0005"), None) == "buy amount 0.0005 BTC is below BTC/USDT's minimum amount 0.001 BTC"


def test_a_buy_pays_its_fee_in_the_coin_and_a_sell_in_the_quote(rules):
    buy = rules.fee("buy", D("0.01"), D("60000"))
    assert (buy.amount, buy.currency, buy.cost, buy.in_base) == (D("0.00001"), "BTC", D("0.6"), True)
    sell = rules.fee("sell", D("0.00999"), D("61000"))
    assert (sell.amount, sell.currency, sell.cost, sell.in_base) == (D("0.60939"), "USDT", D("0.60939"), False)
    assert rules.fee("buy", D("0.01"), D("60000"), maker=True).amount == D("0.000008")
    assert rules.fee_currency("buy") == "BTC" and rules.fee_currency("sell") == "USDT"


def test_fees_are_rounded_down_to_the_asset_precision(rules):
    # 0.00001234 BTC at 0.1 % is 0.00000001234 BTC: 8 decimals keep 0.00000001.
    assert rules.fee("buy", D("0.00001234"), D("60000")).amount == D("0.00000001")


def test_fee_side_give_charges_the_asset_spent():
    rules = MarketRules.from_ccxt_market({**BTCUSDT, "feeSide": "give"})
    assert rules.fee_currency("buy") == "USDT" and rules.fee_currency("sell") == "BTC"


def test_an_exit_short_only_by_coin_fees_sells_what_is_held(rules):
    exit_ = rules.exit_amount(D("0.01"), D("0.00999"), D("0.00001"))
    assert (exit_.amount, exit_.sized_down, exit_.reason) == (D("0.00999"), True, None)
    rounded = rules.exit_amount(D("0.01"), D("0.009995"), D("0.000005"))
    assert (rounded.amount, rounded.dust) == (D("0.00999"), D("0.000005"))  # lot step; the rest is dust
    assert rules.exit_amount(D("0.005"), D("0.00999"), D("0.00001")) == ExitAmount(D("0.005"))  # held: as asked
    everything = rules.exit_amount(D("0.00999"), D("0.00999"), D("0.00001"))
    assert (everything.amount, everything.sized_down, everything.closes) == (D("0.00999"), False, True)


def test_an_exit_short_by_more_than_the_coin_fees_is_refused(rules):
    exit_ = rules.exit_amount(D("0.01"), D("0.005"), D("0.00001"))
    assert exit_.reason == (
        "insufficient BTC: sell 0.01 BTC but 0.005 BTC is held (fees of 0.00001 BTC were charged in the coin)"
    )


def test_bad_input_says_what_was_wrong():
    with pytest.raises(ValueError, match="ccxt market dict"):
        MarketRules.from_ccxt_market(["BTC/USDT"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fee_side must be one of"):
        MarketRules("BTC/USDT", "BTC", "USDT", fee_side="sometimes")
    with pytest.raises(ValueError, match="amount must be a number"):
        MarketRules.from_ccxt_market(BTCUSDT).round_amount("lots")
    with pytest.raises(ValueError, match="side must be 'buy' or 'sell'"):
        MarketRules.from_ccxt_market(BTCUSDT).check("long", 1, 1)
