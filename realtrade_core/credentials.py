"""API credentials that never show themselves in logs, reprs, exception messages or files.

:class:`Credentials` holds a key and secret and shows only a fingerprint of the key.
:func:`scrub` takes any text (a log message, ccxt's verbose output, an exception message, a
reason written to the journal) and replaces every registered key and secret, plus what
authenticates a request on the wire (``X-MBX-APIKEY``, ``X-BAPI-API-KEY``, ``X-BAPI-SIGN``,
``signature=``, ``apiKey``...), whatever key it belongs to. :func:`protect` registers a pair and
makes every log record of the process go through :func:`scrub` (a chained log record factory),
so ccxt's and urllib3's DEBUG request logs and any exception traceback logged hold no secret.
:func:`hmac_hex` is the signature most exchanges ask of a request (plugins and their emulators).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Credentials", "fingerprint", "hmac_hex", "protect", "redact", "scrub", "scrub_exception"]


@dataclass(frozen=True, slots=True)
class Credentials:
    api_key: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)

    def __bool__(self) -> bool:
        return bool(self.api_key and self.secret)

    def __repr__(self) -> str:
        return f"Credentials(api_key={redact(self.api_key)}, secret={'***' if self.secret else None})"

    __str__ = __repr__

    @property
    def fingerprint(self) -> str | None:
        """A short hash naming the account's key (see :func:`fingerprint`); None without a key."""
        return fingerprint(self.api_key)


def fingerprint(api_key: str | None) -> str | None:
    """16 hex digits of SHA-256 of the API key: tells two keys apart, reveals nothing of it."""
    if not api_key:
        return None
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def hmac_hex(secret: str, payload: str) -> str:
    """Hex HMAC-SHA256 of ``payload`` keyed with an API secret: how Binance, Bybit and most
    exchanges sign a request."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def redact(value: str | None) -> str | None:
    """Show only enough of a key to recognise it: ``'abcd…1f2e3d'`` (first 4 characters and 6
    hex digits of its SHA-256). Short values show as ``'***'``."""
    if not value:
        return None
    if len(value) <= 12:
        return "***"
    return f"{value[:4]}…{hashlib.sha256(value.encode()).hexdigest()[:6]}"


# --- scrubbing ----------------------------------------------------------------------------------

_lock = threading.Lock()
_keys: set[str] = set()
_secrets: set[str] = set()
_known: tuple[tuple[str, str], ...] = ()  # (value, replacement), longest first
_installed = False

# Names whose value authenticates a request: headers, query parameters, JSON fields, dict reprs.
_NAMES = (
    r"X-MBX-APIKEY|X-BAPI-API-KEY|X-BAPI-SIGN|X-BAPI-SIGN-TYPE|X-BAPI-SIGNATURE"
    r"|api[-_]?key|apiSecret|api[-_]?secret|secret|signature|sign|passphrase|password"
)
# name, then a quote or not, = or :, maybe a quote, then the value up to a delimiter.
_FIELD = re.compile(
    r"""(?P<name>(?<![A-Za-z0-9_])(?:""" + _NAMES + r"""))(?P<sep>['"]?\s*[:=]\s*['"]?)(?P<value>[^\s'"&,;}\])]+)""",
    re.IGNORECASE,
)


def _rebuild() -> None:
    global _known
    pairs = [(s, "***") for s in _secrets] + [(k, redact(k) or "***") for k in _keys]
    _known = tuple(sorted(pairs, key=lambda p: len(p[0]), reverse=True))


def scrub(text: str) -> str:
    """``text`` without any registered key or secret and without the values of
    authentication fields (``X-MBX-APIKEY: ...``, ``signature=...``, ``"apiKey": "..."``)."""
    if not text:
        return text
    for value, replacement in _known:
        if value in text:
            text = text.replace(value, replacement)
    return _FIELD.sub(_mask_field, text)


def _mask_field(match: re.Match[str]) -> str:
    value = match.group("value")
    if value in ("***", "None", "null") or "…" in value:
        return match.group(0)
    return f"{match.group('name')}{match.group('sep')}***"


def scrub_exception(exc: BaseException) -> BaseException:
    """Scrub ``exc``'s arguments (and those of the exceptions it chains) in place; returns it.
    ccxt puts the signed URL in its error messages."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        try:
            current.args = tuple(scrub(a) if isinstance(a, str) else a for a in current.args)
        except (AttributeError, TypeError):  # an exception class with read-only args
            pass
        current = current.__cause__ or current.__context__
    return exc


def protect(*credentials: Credentials | str | None) -> None:
    """Register API keys and secrets to be scrubbed from every log record of this process.

    A :class:`Credentials` registers its key and secret; a plain string is treated as a secret.
    Installs the scrubbing log record factory on first use.
    """
    global _installed
    with _lock:
        for item in credentials:
            if isinstance(item, Credentials):
                if item.api_key and len(item.api_key) >= 4:
                    _keys.add(item.api_key)
                if item.secret and len(item.secret) >= 4:
                    _secrets.add(item.secret)
            elif isinstance(item, str) and len(item) >= 4:
                _secrets.add(item)
        _rebuild()
        if not _installed:
            _install_record_factory()
            _installed = True


def _install_record_factory() -> None:
    # A record factory sees every record of every logger (ccxt, urllib3, websocket-client, ours)
    # once its level is enabled, before any handler or formatter: the one place to scrub them
    # all. It chains to whatever factory was installed before.
    previous = logging.getLogRecordFactory()
    formatter = logging.Formatter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report
            return record
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            scrub_exception(record.exc_info[1])
            record.exc_text = scrub(formatter.formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
