"""OKX's third credential, the API passphrase, never leaves the process in clear: not in logs
(ccxt's verbose output of signed requests included, whose headers carry it), not in reprs, not
in errors, not in the files a live run writes, not on stdout or stderr."""

from __future__ import annotations

import logging
import secrets
import traceback
from pathlib import Path
from typing import Any

import pytest

from realtrade_core import load_exchange
from realtrade_core.emulator.server import Emulator
from realtrade_core.errors import ExchangeError
from realtrade_core.testing.live import LiveRun

SYMBOL = "BTC/USDT"


def canary(label: str) -> str:
    return f"CANARY{label}{secrets.token_hex(12)}"


def test_the_passphrase_key_and_secret_never_appear_in_clear(tmp_path: Path, monkeypatch: Any, caplog: Any,
                                                              capfd: Any) -> None:  # fmt: skip
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    caplog.set_level(logging.DEBUG)
    key, secret, passphrase, wrong = canary("KEY"), canary("SECRET"), canary("PASS"), canary("WRONGPASS")
    spec = load_exchange("okx")
    texts: dict[str, str] = {}
    with Emulator("okx", symbols=(SYMBOL,), speed=None, history=30, future=100, api_key=key, secret=secret,
                  balances={"USDT": 10_000, "BTC": 0}, settings={"passphrase": passphrase}) as emu:  # fmt: skip
        store = spec.store(venue="emulator", emulator=emu, api_key=key, secret=secret, passphrase=passphrase,
                           spec=spec, ccxt_config={"verbose": True})  # fmt: skip
        try:
            store.start()
            with LiveRun(emu, store, SYMBOL, journal=str(tmp_path / "journal.sqlite3")) as run:
                s = run.strategy
                filled = run.do(lambda s: s.buy(size=0.01))
                refused = run.do(lambda s: s.buy(size=5.0))  # far more than the cash left buys
                run.until(lambda: "Completed" in s.statuses(filled), "the filled buy")
                run.until(lambda: "Margin" in s.statuses(refused), "the refused buy")
                texts["reject reasons"] = str(refused.info.get("reject_reason"))
                texts["store messages"] = " ".join(s.store_messages)
            texts["reprs"] = " ".join(repr(x) for x in (store, store.credentials, run.broker, emu))
        finally:
            store.stop()

        # A wrong passphrase: OKX refuses the signed request; the error names no credential.
        bad = spec.store(venue="emulator", emulator=emu, api_key=key, secret=secret, passphrase=wrong, spec=spec,
                         ccxt_config={"verbose": True})  # fmt: skip
        try:
            with pytest.raises(ExchangeError) as refused_login:
                bad.start()  # ccxt.okx signs a request while loading markets when it has a key
                bad._call(bad.client.fetch_balance)
            texts["wrong-passphrase error"] = "".join(traceback.format_exception(refused_login.value)) + repr(bad)
        finally:
            bad.stop()

    out, err = capfd.readouterr()
    texts.update({"log records": caplog.text, "stdout": out, "stderr": err})
    files = {str(p): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert any(name.endswith("journal.sqlite3") for name in files)
    for value in (passphrase, wrong, secret, key):
        for where, text in texts.items():
            assert value not in text, f"{value[:14]}… leaked in {where}"
        for where, data in files.items():
            assert value.encode() not in data, f"{value[:14]}… leaked in file {where}"
    # There was something to leak: ccxt's verbose output of signed requests reached the log.
    assert "OK-ACCESS-PASSPHRASE" in caplog.text
    assert "Passphrase" in texts["wrong-passphrase error"] or "passphrase" in texts["wrong-passphrase error"]
