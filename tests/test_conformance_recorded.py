"""A plugin with no emulator dialect (REST through ccxt only) runs the suite's offline cases against
REST answers it recorded: discovery, market metadata, history and paper, with no network.

``tinyrest`` is a fake third-party distribution (tests/fakedist.py) speaking Binance's REST API
through unmodified ccxt. Its recorded answers (tests/fixtures/recorded/tinyrest.json) were
recorded once, with the suite's recording mode, from the Binance emulator standing in for the
exchange; every other case skips, naming what the plugin does not declare.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fakedist import make_dist

from realtrade_core import RealtradeError
from realtrade_core.emulator.server import Emulator
from realtrade_core.plugins import PluginHost
from realtrade_core.testing import CASES, ExchangeConformance
from realtrade_core.testing.cases import unmet
from realtrade_core.testing.replay import ReplayServer, load_recording
from realtrade_core.timeframes import parse_timeframe

RECORDED = Path(__file__).resolve().parent / "fixtures" / "recorded" / "tinyrest.json"

TINYREST = """
from realtrade_core import Capabilities, ExchangeSpec, hookimpl
from realtrade_core.broker import Broker
from realtrade_core.feed import Data
from realtrade_core.store import Store


class TinyStore(Store):
    exchange = "tinyrest"
    ccxt_id = "binance"


class TinyData(Data):
    exchange = "tinyrest"


@hookimpl
def realtrade_exchange():
    return ExchangeSpec(
        name="tinyrest", store=TinyStore, broker=Broker, feed=TinyData, ccxt_id="binance",
        capabilities=Capabilities(order_types=frozenset({"market", "limit"}), public_stream=False,
                                  private_stream=False, testnet=False, emulator=False),
    )
"""

OFFLINE = {"RT-101", "RT-102", "RT-103", "RT-201", "RT-202", "RT-203", "RT-204", "RT-301", "RT-501"}


@pytest.fixture(scope="module", autouse=True)
def tinyrest_installed(tmp_path_factory: pytest.TempPathFactory):
    site = tmp_path_factory.mktemp("site")
    make_dist(site, "realtrade-tinyrest", "0.3.0", {"tinyrest": "tinyrest_plugin"}, {"tinyrest_plugin": TINYREST})
    sys.path.insert(0, str(site))
    yield site
    sys.path.remove(str(site))
    sys.modules.pop("tinyrest_plugin", None)


class TestTinyRestConformance(ExchangeConformance):
    exchange = "tinyrest"
    recorded = RECORDED


def test_the_offline_cases_run_and_every_other_case_skips_naming_why():
    spec = PluginHost().load_exchange("tinyrest")
    reasons = {c.id: unmet(c.needs, spec, recorded=True) for c in CASES}
    assert {case for case, reason in reasons.items() if reason is None} == OFFLINE
    assert reasons["RT-302"] == "tinyrest declares no emulator dialect"
    assert reasons["RT-802"] == "tinyrest declares no public stream"
    # without its recording the metadata cases skip too, saying what to supply
    assert unmet(("offline",), spec) == (
        "tinyrest declares no emulator dialect and its tests give no recorded REST answers"
    )


def tinyrest_store(server: ReplayServer):
    spec = PluginHost().load_exchange("tinyrest")
    store = spec.store(venue="mainnet", spec=spec, ccxt_config={"timeout": 5000})
    server.route(store.client)
    return store


def test_answers_recorded_from_an_exchange_replay_offline_as_they_were(tmp_path):
    tf = parse_timeframe("1m")
    path = tmp_path / "recorded.json"
    with Emulator("binance", symbols=("BTC/USDT",), speed=None, history=60) as emu:
        with ReplayServer(upstream=lambda origin: emu.base_http, exchange="tinyrest") as recorder:
            store = tinyrest_store(recorder)
            store.start()
            now = store.server_time()
            recorded = store.fetch_closed_candles("BTC/USDT", tf, since=(now // tf.ms - 30) * tf.ms)
            store.stop()
            recorder.save(path)
    assert len(recorded) == 30
    # The exchange is gone: the same requests are answered from the file.
    with ReplayServer(load_recording(path)) as replay:
        store = tinyrest_store(replay)
        store.start()
        assert store.server_time() == now
        assert store.fetch_closed_candles("BTC/USDT", tf, since=(now // tf.ms - 30) * tf.ms) == recorded
        store.stop()
    assert replay.misses == []


def test_a_request_the_recording_has_no_answer_for_is_named(tmp_path):
    path = tmp_path / "recorded.json"
    path.write_text('{"exchange": "tinyrest", "responses": []}')
    with ReplayServer(load_recording(path)) as replay:
        store = tinyrest_store(replay)
        with pytest.raises(RealtradeError):
            store.start()
    assert replay.misses and all(m.startswith("GET https://") for m in replay.misses)
    assert any("/api/v3/exchangeInfo" in m for m in replay.misses)


def test_a_missing_or_broken_recording_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="REALTRADE_RECORD_RESPONSES=1"):
        load_recording(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text('{"responses": "no"}')
    with pytest.raises(ValueError, match="no 'responses' list"):
        load_recording(tmp_path / "bad.json")
