"""What Binance's client side and its emulator share: how a WebSocket API request is signed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from realtrade_core.credentials import hmac_hex


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
