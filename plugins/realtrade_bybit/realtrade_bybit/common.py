"""What Bybit's client side and its emulator share: how the private stream signs its auth."""

from __future__ import annotations

from realtrade_core.credentials import hmac_hex


def ws_auth_signature(secret: str, expires: int | str) -> str:
    """The private stream's auth signature: HMAC-SHA256 of ``"GET/realtime" + expires``."""
    return hmac_hex(secret, f"GET/realtime{expires}")
