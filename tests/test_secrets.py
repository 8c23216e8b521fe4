"""No API secret and no whole API key in logs, stdout/stderr, reprs, errors or files.

The canary tests register a unique key and secret on the emulator, run the main paths with
ccxt's ``verbose`` on and logging at DEBUG (store, history and live bars, live orders filled and
refused, a wrong key, a dropped and re-made connection, the ``realtrade demo`` command in a
subprocess), then search every log record, everything printed and every file written for them.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import backtrader as bt
import pytest

from realtrade_core.credentials import Credentials, fingerprint, protect, redact, scrub, scrub_exception
from realtrade_core.emulator.server import Emulator
from realtrade_core.journal import Journal, JournalOrder
from realtrade_core.plugins import load_exchange
from realtrade_core.store import ExchangeError

SYMBOL = "BTC/USDT"
# A signature or key value left in the clear after a name that authenticates a request.
_CLEAR = re.compile(
    r"(signature=|X-MBX-APIKEY'?:\s*'?|X-BAPI-API-KEY'?:\s*'?|X-BAPI-SIGN'?:\s*'?|\"apiKey\":\s*\"|\"signature\":\s*\")"
    r"[0-9A-Za-z]{12,}",
    re.IGNORECASE,
)


def canary(label: str) -> str:
    return f"CANARY{label}{secrets.token_hex(20)}"


def written_files(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def assert_clean(texts: dict[str, str], files: dict[str, bytes], *values: str) -> None:
    for value in values:
        for where, text in texts.items():
            assert value not in text, f"{value[:10]}… leaked in {where}"
        for where, data in files.items():
            assert value.encode() not in data, f"{value[:10]}… leaked in file {where}"
    for where, text in texts.items():
        match = _CLEAR.search(text)
        assert match is None, f"an unmasked credential in {where}: {match.group(0)[:40]}…"


class Canary(bt.Strategy):
    """Buys a little (fills), asks for far too much (refused), drops the connections once both
    are done, and stops once the streams are back (or after max_bars)."""

    params = (("emulator", None), ("max_bars", 600))

    def __init__(self) -> None:
        self.live_bars = 0
        self.live = False
        self.sent: list = []
        self.final: dict[int, str] = {}
        self.reasons: list[str] = []
        self.store_messages: list[str] = []
        self.dropped_at: int | None = None

    def notify_data(self, data, status, *args, **kwargs) -> None:
        self.live = data._getstatusname(status) == "LIVE"

    def notify_store(self, msg, *args, **kwargs) -> None:
        self.store_messages.append(str(msg))

    def notify_order(self, order) -> None:
        if not order.alive():
            self.final[order.ref] = order.getstatusname()
            self.reasons.append(str(order.info.get("reject_reason") or ""))

    def reconnected(self) -> bool:
        if self.dropped_at is None:
            return False
        after = self.store_messages[self.dropped_at :]
        return any(m.startswith("disconnected") for m in after) and any(m.startswith("connected") for m in after)

    def next(self) -> None:
        if not self.live:
            return
        self.live_bars += 1
        if not self.sent:
            self.sent = [self.buy(size=0.001), self.buy(size=1.0)]  # 1 BTC: more than the account can pay
        elif self.dropped_at is None and len(self.final) == len(self.sent):
            self.dropped_at = len(self.store_messages)
            self.p.emulator.drop_connections()
        if self.reconnected() or self.live_bars >= self.p.max_bars:
            self.env.runstop()


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_canary_credentials_never_leave_the_process_in_clear(exchange, tmp_path, monkeypatch, caplog, capfd):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    key, secret = canary("KEY"), canary("SECRET")
    wrong_key, wrong_secret = canary("WRONGKEY"), canary("WRONGSECRET")
    spec = load_exchange(exchange)
    texts: dict[str, str] = {}
    caplog.set_level(logging.DEBUG)
    with Emulator(exchange, symbols=(SYMBOL,), speed=600, history=60, seed=11, api_key=key, secret=secret,
                  balances={"USDT": 10_000}) as emu:  # fmt: skip
        # verbose given as a ccxt option (binance) or switched on later on the client (bybit)
        config = {"verbose": True} if exchange == "binance" else {}
        store = spec.store(venue="emulator", emulator=emu, api_key=key, secret=secret, spec=spec, ccxt_config=config)
        try:
            store.start()
            store.client.verbose = True
            assert store._call(store.client.fetch_balance)["USDT"]["free"] > 0
            with pytest.raises(ExchangeError) as unknown_order:
                store._call(store.client.fetch_order, "123456789", SYMBOL, params={"acknowledged": True})
            texts["unknown-order error"] = "".join(traceback.format_exception(unknown_order.value))

            # history, live bars, live orders (one filled, one refused), a reconnect
            cerebro = bt.Cerebro()
            cerebro.adddata(store.getdata(dataname=SYMBOL, timeframe="1m", backfill_bars=30, qcheck=0.05))
            broker = store.getbroker(mode="live", journal=str(tmp_path / "journal.sqlite3"))
            cerebro.setbroker(broker)
            cerebro.addstrategy(Canary, emulator=emu)
            (strategy,) = cerebro.run()
            texts["reprs"] = " ".join(
                repr(x) for x in (store, store.credentials, broker, emu, Credentials(key, secret))
            ) + str(store.credentials)
            texts["reject reasons"] = " ".join(strategy.reasons)
            texts["store messages"] = " ".join(strategy.store_messages)
        finally:
            store.stop()
        assert sorted(strategy.final.values()) == ["Completed", "Margin"], strategy.final
        assert strategy.reconnected(), strategy.store_messages

        # a wrong key: refused by the exchange, reported without the key
        wrong = spec.store(venue="emulator", emulator=emu, api_key=wrong_key, secret=wrong_secret, spec=spec,
                           ccxt_config={"verbose": True})  # fmt: skip
        try:
            with pytest.raises(ExchangeError, match="API key was refused") as refused:
                wrong.start()  # Binance: ccxt signs a request while loading markets when it has a key
                wrong._call(wrong.client.fetch_balance)
            texts["wrong-key error"] = "".join(traceback.format_exception(refused.value)) + repr(wrong)
        finally:
            wrong.stop()

    out, err = capfd.readouterr()
    texts.update({"log records": caplog.text, "stdout": out, "stderr": err})
    files = written_files(tmp_path)
    assert any(name.endswith("journal.sqlite3") for name in files)
    assert_clean(texts, files, key, secret, wrong_key, wrong_secret)
    # and there was something to leak: ccxt's verbose output of signed requests, in the log
    assert "fetch Request" in caplog.text, "ccxt's verbose output never reached the log"
    assert ("X-MBX-APIKEY" if exchange == "binance" else "X-BAPI-API-KEY") in caplog.text


def test_the_demo_command_keeps_canary_credentials_out_of_its_output_and_files(tmp_path):
    key, secret = canary("KEY"), canary("SECRET")
    script = textwrap.dedent(
        f"""
        import logging, sys
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
        import ccxt
        ccxt.Exchange.verbose = True  # every ccxt client of the demo is verbose
        from realtrade_core.emulator import server
        start = server.Emulator.__init__
        def with_canary(self, *args, **kwargs):
            kwargs.setdefault("api_key", {key!r})
            kwargs.setdefault("secret", {secret!r})
            start(self, *args, **kwargs)
        server.Emulator.__init__ = with_canary
        from realtrade_core.cli import main
        sys.exit(main(["demo", "--bars", "5", "--exchange", "bybit"]))
        """
    )
    env = {"PATH": "/usr/bin:/bin", "XDG_DATA_HOME": str(tmp_path / "data"), "HOME": str(tmp_path)}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert_clean({"demo stdout": done.stdout, "demo stderr": done.stderr}, written_files(tmp_path), key, secret)
    assert "done " in done.stdout  # the demo ran to its end
    assert "fetch Request" in done.stderr  # ccxt's verbose output went to the (scrubbed) log


# --- the pieces -------------------------------------------------------------------------------------


def test_scrub_masks_what_authenticates_a_request_whoever_it_belongs_to():
    lines = [
        "fetch Request: binance GET http://127.0.0.1:1/api/v3/account?timestamp=1&signature=" + "ab" * 32,
        "RequestHeaders: {'X-MBX-APIKEY': 'Zz9" + "q" * 40 + "', 'Content-Type': 'application/json'}",
        "{'X-BAPI-API-KEY': 'Kk1" + "w" * 20 + "', 'X-BAPI-SIGN': '" + "cd" * 32 + "', 'X-BAPI-SIGN-TYPE': '2'}",
        '{"method":"session.logon","params":{"apiKey":"Aa7' + "e" * 40 + '","signature":"' + "ef" * 32 + '"}}',
        "{'apiKey': 'Pp3" + "r" * 30 + "', 'secret': 'Ss4" + "t" * 30 + "'}",
    ]
    for line in lines:
        assert _CLEAR.search(scrub(line)) is None, scrub(line)
        assert "***" in scrub(line)
    for word in ("X-MBX-APIKEY", "X-BAPI-SIGN", "signature", "apiKey"):
        assert word in " ".join(scrub(line) for line in lines)  # names stay: the log still reads


def test_a_registered_key_shows_as_a_fingerprint_and_a_secret_not_at_all():
    key, secret = canary("KEY"), canary("SECRET")
    protect(Credentials(key, secret))
    text = scrub(f"key {key} then secret {secret}")
    assert key not in text and secret not in text
    assert redact(key) in text and redact(key).startswith(key[:4]) and len(redact(key)) < 12
    assert "***" in text
    assert fingerprint(key) == fingerprint(key) != fingerprint(secret) and key[:4] not in fingerprint(key)
    assert repr(Credentials(key, secret)) == f"Credentials(api_key={redact(key)}, secret=***)"


def test_exception_chains_and_logged_tracebacks_are_scrubbed(caplog):
    key = canary("KEY")
    protect(Credentials(key, canary("SECRET")))
    try:
        try:
            raise OSError(f"GET http://127.0.0.1:1/api?signature={'9f' * 32} key {key}")
        except OSError as inner:
            raise RuntimeError(f"wrapped {key}") from inner
    except RuntimeError as exc:
        scrub_exception(exc)
        text = "".join(traceback.format_exception(exc))
        with caplog.at_level(logging.DEBUG):
            logging.getLogger("some.library").exception("failed with %s", key)
    assert key not in text and _CLEAR.search(text) is None
    assert key not in caplog.text and "failed with" in caplog.text


def test_a_reason_journaled_from_an_exchange_error_is_scrubbed(tmp_path):
    key = canary("KEY")
    protect(Credentials(key, canary("SECRET")))
    path = tmp_path / "j.sqlite3"
    with Journal(path) as journal:
        journal.record_order(JournalOrder("rt-1", None, SYMBOL, "buy", "market", 1, None, None, "submitting",
                                          reason=f"POST /api/v3/order?signature={'ab' * 32} for {key}"))  # fmt: skip
        journal.update_order("rt-1", status="rejected", reason=f"refused, apiKey={key}")
        assert key not in (journal.get_order("rt-1").reason or "")
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert key.encode() not in data and b"ab" * 32 not in data
