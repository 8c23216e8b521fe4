"""Recorded REST answers replayed to unmodified ccxt on loopback, for plugins without an emulator.

A plugin that talks to its exchange only through ccxt's REST API (no emulator dialect) can still
run the conformance suite's discovery, metadata, history and paper cases offline: it records the
exchange's answers once, commits the file, and the suite replays it. ccxt stays unmodified: only
its ``urls["api"]`` are pointed at a small HTTP server on 127.0.0.1 (real sockets, ccxt's own
request code and parsers), which answers each request with the answer recorded for it.

A recording is JSON::

    {"exchange": "kraken", "symbol": "BTC/USDT",
     "responses": [{"method": "GET", "url": "https://api.kraken.com/0/public/Time",
                    "status": 200, "body": {...}}, ...]}

``body`` is the decoded JSON answer (``text`` instead, for an answer that is not JSON). A request
matches an answer by method, URL and query (parameters in any order). A request with no recorded
answer is answered 422 with a body saying so, and listed in :attr:`ReplayServer.misses`.

To record, run the suite once with ``REALTRADE_RECORD_RESPONSES=1`` (and network access): the
same server then forwards every request it has no answer for to the exchange and adds what it
answered to the test class's ``recorded`` file (delete the file to record everything anew).
``REALTRADE_RECORD_UPSTREAM=http://127.0.0.1:PORT`` sends those requests to that server instead
(e.g. to record from an emulator of the same exchange). The exchange's clock is the first answer
its time endpoint gave, recording or replaying, so the cases ask for the same candles each time.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["ENV_RECORD", "ENV_UPSTREAM", "ReplayServer", "load_recording"]

ENV_RECORD = "REALTRADE_RECORD_RESPONSES"
ENV_UPSTREAM = "REALTRADE_RECORD_UPSTREAM"
# Request headers never forwarded when recording: hop-by-hop, or what urllib sets itself.
_NOT_FORWARDED = {"host", "content-length", "connection", "accept-encoding", "keep-alive"}


def request_key(method: str, url: str) -> str:
    """How a request is matched: method, scheme, host, path and the query in sorted order."""
    parts = urlsplit(url)
    query = urlencode(sorted(parse_qsl(parts.query, keep_blank_values=True)))
    return f"{method.upper()} {parts.scheme}://{parts.netloc}{parts.path}" + (f"?{query}" if query else "")


def load_recording(path: str | Path) -> dict[str, Any]:
    """Read and check a recording file; a bad one is a clear error naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no recorded REST answers at {path}: record them once with {ENV_RECORD}=1 (needs the network)"
        ) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not a JSON recording of REST answers: {exc}") from None
    responses = data.get("responses") if isinstance(data, dict) else None
    if not isinstance(responses, list) or not all(isinstance(r, dict) and "url" in r for r in responses):
        raise ValueError(f"{path} has no 'responses' list of {{method, url, status, body}} records")
    return data


class ReplayServer:
    """An HTTP server on 127.0.0.1 answering ccxt's requests from a recording.

    ``recording`` is a loaded recording (replay), or None with ``upstream`` to record: every
    request is forwarded to ``upstream(origin)`` (origin: ``"https://api.example.com"``; the
    default sends it to the origin itself) and its answer kept (:meth:`recording`).
    """

    def __init__(
        self,
        recording: Mapping[str, Any] | None = None,
        *,
        upstream: Callable[[str], str] | None = None,
        exchange: str = "",
        symbol: str = "",
    ) -> None:
        if recording is None and upstream is None:
            raise ValueError("give a recording to replay, or upstream= to record one")
        self._upstream = upstream
        self._meta: dict[str, Any] = {"exchange": exchange, "symbol": symbol}
        self._answers: dict[str, dict[str, Any]] = {}
        if recording is not None:
            self._meta = {k: v for k, v in recording.items() if k != "responses"}
            for response in recording["responses"]:
                self._answers.setdefault(request_key(response.get("method", "GET"), response["url"]), response)
        self._kept: list[dict[str, Any]] = list(self._answers.values())
        self.misses: list[str] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def recording_mode(self) -> bool:
        """True when requests without an answer go to the exchange and their answers are kept."""
        return self._upstream is not None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> ReplayServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="realtrade-replay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base(self) -> str:
        assert self._server is not None, "start() the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- ccxt -----------------------------------------------------------------------------------

    def route(self, client: Any) -> Any:
        """Point every URL of ccxt ``client``'s ``urls["api"]`` at this server (in place)."""
        client.urls["api"] = self._rewrite(client.urls["api"])
        return client

    def _rewrite(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self._rewrite(v) for k, v in value.items()}
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            scheme, rest = value.split("://", 1)
            return f"{self.base}/{scheme}/{rest}"
        return value

    # --- answers --------------------------------------------------------------------------------

    def answer(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> tuple[int, str, str]:
        """(status, content type, body) for a request ccxt sent to ``url`` (its real URL). A
        request answered once gets that answer again, recording or not: the exchange's clock
        stands still, so the cases ask for the same candles in both modes."""
        with self._lock:
            found = self._answers.get(request_key(method, url))
        if found is None and self.recording_mode:
            found = self._forward(method, url, headers, body)
        if found is None:
            with self._lock:
                self.misses.append(f"{method} {url}")
            message = {"realtrade_replay": f"no recorded answer for {method} {url}; record it ({ENV_RECORD}=1)"}
            # 422: ccxt's ExchangeError, which nothing retries (a 404 would be waited out as an outage)
            return 422, "application/json", json.dumps(message)
        if "body" in found:
            return int(found.get("status", 200)), "application/json", json.dumps(found["body"])
        return int(found.get("status", 200)), "text/plain", str(found.get("text", ""))

    def _forward(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        assert self._upstream is not None
        target = self._upstream(origin).rstrip("/") + url[len(origin) :]
        sent = {k: v for k, v in headers.items() if k.lower() not in _NOT_FORWARDED}
        request = urllib.request.Request(target, data=body or None, headers=sent, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode()
        record: dict[str, Any] = {"method": method, "url": url, "status": status}
        try:
            record["body"] = json.loads(text)
        except ValueError:
            record["text"] = text
        with self._lock:
            key = request_key(method, url)
            if key not in self._answers:
                self._answers[key] = record
                self._kept.append(record)
            return self._answers[key]

    def recording(self) -> dict[str, Any]:
        """What was recorded (record mode), ready for :meth:`save`."""
        with self._lock:
            return {**self._meta, "responses": list(self._kept)}

    def save(self, path: str | Path) -> None:
        """Write every answer (those replayed and those recorded now) to ``path``."""
        Path(path).write_text(json.dumps(self.recording(), indent=1, sort_keys=True) + "\n")


def _handler_for(replay: ReplayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            # The path is /<scheme>/<host>/<the real path and query>, as route() rewrote it.
            scheme, _, rest = self.path.lstrip("/").partition("/")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, ctype, text = replay.answer(self.command, f"{scheme}://{rest}", dict(self.headers), body)
            payload = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _serve  # http.server's naming

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the suite reports misses itself

    return Handler
