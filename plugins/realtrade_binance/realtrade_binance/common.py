"""What Binance's client side and its emulator share: how a request is signed."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

EXCHANGE = "binance"


def hmac_hex(secret: str, payload: str) -> str:
    """Binance's signature: hex HMAC-SHA256 of ``payload`` with the API secret."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def signature_ok(secret: str, payload: str, signature: str) -> bool:
    """Whether ``signature`` signs ``payload`` (compared in constant time)."""
    return hmac.compare_digest(hmac_hex(secret, payload), signature.strip().lower())


def ws_signature_payload(params: Mapping[str, Any]) -> str:
    """The WebSocket API's signed payload: every parameter but ``signature``, sorted by name,
    as ``key=value`` joined with ``&`` (booleans written as JSON writes them)."""
    items = []
    for key in sorted(params):
        if key == "signature":
            continue
        value = params[key]
        if isinstance(value, bool):
            value = "true" if value else "false"
        items.append(f"{key}={value}")
    return "&".join(items)


def sign(secret: str, params: Mapping[str, Any]) -> str:
    """The ``signature`` of a WebSocket API request with these ``params``."""
    return hmac_hex(secret, ws_signature_payload(params))
