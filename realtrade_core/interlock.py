"""Where a venue="emulator" store may connect: loopback, or a remote host the user allowed.

The mainnet interlock (a live broker on ``venue="mainnet"`` needs ``allow_mainnet=True``) is only
worth something if ``venue="emulator"`` cannot reach a real exchange. So an emulator's URLs are
built here from what the user gave (``emulator_url``) and the fixed paths the plugin's dialect
declares, never taken from a server's answer, and every one of them is checked: its host must
be loopback (127.0.0.0/8, ::1, ``localhost``) unless the user passed
``allow_remote_emulator=True``, and it is never a host of the real exchange.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError

__all__ = ["check_emulator_url", "emulator_urls", "exchange_domains", "is_loopback"]

_SCHEMES = frozenset({"http", "https", "ws", "wss"})


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` and IP literals in 127.0.0.0/8 or ::1 (no DNS lookup: a name that
    merely resolves to loopback today may not tomorrow)."""
    if not host:
        return False
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _domain(host: str) -> str:
    labels = host.rstrip(".").lower().split(".")
    return ".".join(labels[-2:])


def exchange_domains(ccxt_id: str) -> frozenset[str]:
    """The domains (``binance.com``, ``binance.vision``...) of ccxt's REST, test and demo URLs for
    ``ccxt_id``: hosts a store on ``venue="emulator"`` must never talk to. Empty if ccxt does
    not know the exchange."""
    import ccxt

    cls = getattr(ccxt, ccxt_id, None)
    if cls is None:
        return frozenset()
    client = cls()  # no request: the constructor only builds the description
    hostname = getattr(client, "hostname", None) or ""
    domains: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif isinstance(value, str) and "://" in value:
            host = urlsplit(value.replace("{hostname}", hostname)).hostname
            if host and "{" not in host:
                domains.add(_domain(host))

    for section in ("api", "test", "demo"):
        walk((client.urls or {}).get(section))
    return frozenset(domains)


def check_emulator_url(
    url: str,
    *,
    exchange: str,
    ccxt_id: str | None = None,
    allow_remote: bool = False,
    what: str = "emulator_url",
    schemes: Iterable[str] = _SCHEMES,
) -> str:
    """Return ``url`` if a venue="emulator" store may use it; raise ConfigurationError otherwise.

    Refused: a scheme other than http(s)/ws(s), no host, a host of the real exchange (checked
    whenever the host is not loopback), and any host that is not loopback unless
    ``allow_remote`` is true. No request is made.
    """
    parts = urlsplit(url)
    allowed = sorted(schemes)
    if parts.scheme.lower() not in allowed or not parts.hostname:
        raise ConfigurationError(
            f"{exchange} emulator: {what} {url!r} is not a {'/'.join(allowed)} URL with a host; "
            f"give the URL `realtrade emulator` printed, e.g. 'http://127.0.0.1:8765'"
        )
    host = parts.hostname
    if is_loopback(host):
        return url
    domains = exchange_domains(ccxt_id or exchange)
    if _domain(host) in domains:
        raise ConfigurationError(
            f"{exchange} emulator: {what} {url!r} is a host of the real exchange ({host}), not an emulator. "
            f"To trade there use venue='testnet', or venue='mainnet' with allow_mainnet=True on a live broker; "
            f"for the emulator give the URL `realtrade emulator` printed"
        )
    if not allow_remote:
        raise ConfigurationError(
            f"{exchange} emulator: {what} {url!r} is not on this machine (host {host!r} is not loopback: "
            f"127.0.0.0/8, ::1 or localhost). If you run an emulator on another host on purpose, pass "
            f"allow_remote_emulator=True to get_store()"
        )
    return url


def check_emulator_urls(
    urls: Iterable[str], *, exchange: str, ccxt_id: str | None = None, allow_remote: bool = False, what: str
) -> None:
    """:func:`check_emulator_url` for each of ``urls``."""
    for url in urls:
        check_emulator_url(url, exchange=exchange, ccxt_id=ccxt_id, allow_remote=allow_remote, what=what)


def emulator_urls(dialect: type, emulator_url: str) -> tuple[dict[str, str], dict[str, str]]:
    """``(client URLs, ccxt urls["api"])`` of an emulator served at ``emulator_url``, built from
    the paths the plugin's dialect declares (``urls()`` and ``ccxt_urls()``), not from anything
    the server says.

    The dialect is not started: its ``urls``/``ccxt_urls`` only join fixed paths to the base URL
    they are given, so they are called on a bare instance.
    """
    base_http = emulator_url.rstrip("/")
    scheme, rest = base_http.split("://", 1)
    base_ws = ("wss" if scheme.lower() == "https" else "ws") + "://" + rest
    bare = dialect.__new__(dialect)
    return dict(bare.urls(base_http, base_ws)), dict(bare.ccxt_urls(base_http))
