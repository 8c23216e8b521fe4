"""What Bybit's client side and its emulator share: how requests are signed."""

from __future__ import annotations

import hashlib
import hmac

EXCHANGE = "bybit"


def hmac_hex(secret: str, payload: str) -> str:
    """Bybit's signature: hex HMAC-SHA256 of ``payload`` with the API secret."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def ws_auth_signature(secret: str, expires: int | str) -> str:
    """The private stream's auth signature: HMAC-SHA256 of ``"GET/realtime" + expires``."""
    return hmac_hex(secret, f"GET/realtime{expires}")
