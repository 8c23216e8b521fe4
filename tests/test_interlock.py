"""The mainnet interlock cannot be bypassed through venue="emulator".

A store on ``venue="emulator"`` builds its URLs from the user's ``emulator_url`` and the paths the
plugin's dialect declares, never from what a server answers, and talks only to loopback unless
``allow_remote_emulator=True``; a real exchange's host is refused before any request. Every test
runs under a guard that refuses (and records) any name lookup of a host that is not loopback,
so a bypass fails the test instead of reaching the internet.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from urllib.parse import urlsplit

import pytest
from livetest import wait_until

from realtrade_core import ConfigurationError
from realtrade_core.emulator.server import Emulator
from realtrade_core.interlock import is_loopback
from realtrade_core.plugins import load_exchange
from realtrade_core.store import get_store

EXCHANGES = ["binance", "bybit"]
SYMBOL = "BTC/USDT"

# What a tampered or hostile emulator might answer: the real exchanges' own URLs.
MAINNET = {
    "binance": {
        "urls": {
            "rest": "https://api.binance.com/api/v3",
            "ws_market": "wss://stream.binance.com:9443/ws",
            "ws_combined": "wss://stream.binance.com:9443/stream",
            "ws_api": "wss://ws-api.binance.com:443/ws-api/v3",
        },
        "ccxt_urls": {"public": "https://api.binance.com/api/v3", "private": "https://api.binance.com/api/v3"},
    },
    "bybit": {
        "urls": {
            "rest": "https://api.bybit.com",
            "ws_public": "wss://stream.bybit.com/v5/public/spot",
            "ws_private": "wss://stream.bybit.com/v5/private",
        },
        "ccxt_urls": {k: "https://api.bybit.com" for k in ("spot", "futures", "v2", "public", "private")},
    },
}


@pytest.fixture
def offline(monkeypatch) -> list[str]:
    """Refuse and record every lookup of a host that is not loopback (in every thread)."""
    attempts: list[str] = []
    real = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if not is_loopback(name):
            attempts.append(name)
            raise socket.gaierror(socket.EAI_NONAME, f"test guard: {name} is not loopback")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    return attempts


def all_urls(store) -> list[str]:
    return [*store.client.urls["api"].values(), *store.stream_urls().values()]


def assert_on(base_http: str, urls: list[str]) -> None:
    origin = urlsplit(base_http)
    for url in urls:
        parts = urlsplit(url)
        assert (parts.hostname, parts.port) == (origin.hostname, origin.port), url


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_an_emulator_answering_mainnet_urls_is_not_followed(exchange, offline, monkeypatch):
    with Emulator(exchange, symbols=(SYMBOL,), speed=None, history=20) as emu:
        honest = emu.state
        monkeypatch.setattr(emu, "state", lambda: {**honest(), **MAINNET[exchange]})  # what /_emulator/state says
        spec = load_exchange(exchange)
        store = spec.store(
            venue="emulator", emulator_url=emu.base_http, api_key=emu.api_key, secret=emu.secret, spec=spec
        )
        try:
            store.start()
            assert store._call(store.client.fetch_balance)["USDT"]["free"] > 0
            events: list[tuple] = []
            store.subscribe_account(events.append)  # the private stream, signed
            assert wait_until(lambda: any(e[0] == "connected" for e in events if isinstance(e, tuple)), 15), events
            assert_on(emu.base_http, all_urls(store))
        finally:
            store.stop()
    assert offline == []


@pytest.mark.parametrize(
    "exchange, url",
    [
        ("binance", "https://api.binance.com"),
        ("binance", "https://api1.binance.com/"),
        ("binance", "https://testnet.binance.vision"),
        ("bybit", "https://api.bybit.com"),
        ("bybit", "https://api-testnet.bybit.com"),
    ],
)
@pytest.mark.parametrize("allow_remote", [False, True])
def test_a_real_exchange_as_emulator_url_is_refused_before_any_request(exchange, url, allow_remote, offline):
    with pytest.raises(ConfigurationError, match="real exchange") as info:
        get_store(exchange, "emulator", emulator_url=url, allow_remote_emulator=allow_remote)
    assert "allow_mainnet=True" in str(info.value)  # says how to really trade there
    assert offline == []


@pytest.mark.parametrize("url", ["http://10.1.2.3:8765", "http://emulator.example:8765", "http://192.168.0.7:1"])
def test_a_remote_emulator_needs_allow_remote_emulator(url, offline):
    with pytest.raises(ConfigurationError, match="allow_remote_emulator=True"):
        get_store("binance", "emulator", emulator_url=url)
    store = get_store("binance", "emulator", emulator_url=url, allow_remote_emulator=True)
    assert store.emulator_url == url  # accepted; nothing is sent before start()
    assert offline == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:1", "http://127.8.9.10:1", "http://localhost:1", "http://[::1]:1"])
def test_loopback_emulator_urls_need_no_opt_in(url):
    assert get_store("bybit", "emulator", emulator_url=url).emulator_url == url


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:21", "127.0.0.1:8765", "ws://127.0.0.1:8765"])
def test_an_emulator_url_that_is_not_http_is_refused(url):
    with pytest.raises(ConfigurationError, match="URL with a host"):
        get_store("binance", "emulator", emulator_url=url)


def test_emulator_url_on_a_real_venue_is_refused():
    with pytest.raises(ConfigurationError, match="only for venue='emulator'"):
        get_store("binance", "testnet", emulator_url="http://127.0.0.1:1")


def test_an_in_process_emulator_on_a_non_loopback_address_needs_the_opt_in(offline):
    # An Emulator object whose URLs name another host (a tampered object, or one bound elsewhere).
    with Emulator("binance", symbols=(SYMBOL,), speed=None, history=20) as emu:
        spec = load_exchange("binance")
        store = spec.store(venue="emulator", emulator=emu, spec=spec)
        store._attached = type("Remote", (), {
            "api_key": emu.api_key, "secret": emu.secret, "urls": MAINNET["binance"]["urls"],
            "base_http": "https://api.binance.com", "dialect": emu.dialect,
        })()  # fmt: skip
        with pytest.raises(ConfigurationError, match="real exchange"):
            store.start()
        with pytest.raises(Exception, match=r"real exchange|not attached"):
            store.client  # noqa: B018 - the client is never built with those URLs
    assert offline == []


def test_stream_urls_of_a_store_subclass_pass_the_interlock_too(offline):
    spec = load_exchange("binance")

    class Sneaky(spec.store):
        def stream_urls(self):
            return dict(MAINNET["binance"]["urls"])

    with pytest.raises(ConfigurationError, match="real exchange"):
        spec.websocket.for_store(Sneaky(venue="emulator", spec=spec), private=False)
    assert offline == []


def test_a_live_broker_on_mainnet_still_needs_allow_mainnet(offline):
    spec = load_exchange("binance")
    store = spec.store(venue="mainnet", api_key="canary-key-0123456789", secret="canary-secret-0123456789", spec=spec)
    with pytest.raises(ConfigurationError, match="allow_mainnet=True"):
        store.getbroker(mode="live")
    assert offline == []


def test_no_environment_variable_or_config_file_changes_where_the_emulator_is(tmp_path):
    """Variables realtrade might plausibly read, and config files where they would live, all
    naming mainnet: the store still runs its own emulator on loopback. The variables realtrade's
    code reads (recorded with the module that read them) are only the documented ones."""
    (tmp_path / "realtrade.toml").write_text('emulator_url = "https://api.binance.com"\nvenue = "mainnet"\n')
    (tmp_path / "config" / "realtrade").mkdir(parents=True)
    (tmp_path / "config" / "realtrade" / "config.toml").write_text('emulator_url = "https://api.binance.com"\n')
    script = textwrap.dedent(
        """
        import json, os, sys

        reads = {}

        class Recording(type(os.environ)):
            def __getitem__(self, key):
                frame = sys._getframe(1)
                while frame and frame.f_code.co_filename.endswith(("os.py", "_collections_abc.py")):
                    frame = frame.f_back
                where = frame.f_code.co_filename if frame else "?"
                if "realtrade" in where:
                    reads.setdefault(key, where.rsplit("/", 1)[-1])
                return super().__getitem__(key)

        recording = Recording(os.environ._data, os.environ.encodekey, os.environ.decodekey,
                              os.environ.encodevalue, os.environ.decodevalue)
        os.environ = recording

        from realtrade_core.store import get_store

        store = get_store("binance", "emulator", emulator_options={"speed": None, "history": 20})
        store.start()
        store.client.fetch_balance()
        urls = [*store.client.urls["api"].values(), *store.stream_urls().values()]
        store.stop()
        print(json.dumps({"urls": urls, "reads": reads}))
        """
    )
    mainnet = "https://api.binance.com"
    env = {
        **__import__("os").environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "REALTRADE_EMULATOR_URL": mainnet,
        "REALTRADE_URL": mainnet,
        "REALTRADE_VENUE": "mainnet",
        "REALTRADE_ALLOW_REMOTE_EMULATOR": "1",
        "REALTRADE_CONFIG": str(tmp_path / "realtrade.toml"),
        "BINANCE_API_URL": mainnet,
        "CCXT_API_URL": mainnet,
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["urls"] and all(is_loopback(urlsplit(u).hostname) for u in result["urls"]), result["urls"]
    documented = {"REALTRADE_LOAD_EXCHANGES", "REALTRADE_DISABLE_EXCHANGES", "REALTRADE_TRACE_HOOKS", "XDG_DATA_HOME"}
    assert set(result["reads"]) <= documented, result["reads"]


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_a_redirect_from_the_emulator_is_not_followed(exchange, offline):
    """A server on loopback that answers a signed request with a redirect to the real exchange:
    the request fails there, and no request (not even a name lookup) goes to the exchange."""
    import http.server
    import threading

    target = MAINNET[exchange]["ccxt_urls"]["private"] + "/account"
    hits: list[str] = []

    class Redirect(http.server.BaseHTTPRequestHandler):
        def _go(self) -> None:
            hits.append(self.path)
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_DELETE = _go

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with Emulator(exchange, symbols=(SYMBOL,), speed=None, history=20) as emu:
            store = get_store(exchange, "emulator", emulator=emu)
            try:
                store.start()
                here = f"http://127.0.0.1:{server.server_address[1]}"
                store.client.urls["api"] = {key: here for key in store.client.urls["api"]}  # a redirecting "emulator"
                with pytest.raises(Exception):  # noqa: B017 - whatever ccxt makes of it, it must not follow
                    store.client.fetch_balance()
                assert hits, "the request must have reached the redirecting server"
            finally:
                store.stop()
    finally:
        server.shutdown()
    assert offline == []
