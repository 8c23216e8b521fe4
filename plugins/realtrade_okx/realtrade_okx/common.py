"""What OKX's client side and its emulator dialect share: request and login signatures, market
ids, the client order id rule and the order states."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

#: ``clOrdId``: case-sensitive letters and digits, at most 32 characters (OKX's rule).
CLIENT_ORDER_ID_RE = re.compile(r"^[A-Za-z0-9]{1,32}$")

#: The path OKX signs a WebSocket login with.
LOGIN_PATH = "/users/self/verify"


def sign(secret: str, payload: str) -> str:
    """OKX's signature: Base64 of the HMAC-SHA256 of ``payload`` keyed with the secret."""
    digest = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def rest_signature(secret: str, timestamp: str, method: str, request_path: str, body: str) -> str:
    """``OK-ACCESS-SIGN``: timestamp (ISO 8601, ms) + method + path with its query + JSON body."""
    return sign(secret, f"{timestamp}{method.upper()}{request_path}{body}")


def login_signature(secret: str, timestamp: str) -> str:
    """The private stream's login ``sign``: timestamp (Unix seconds) + ``GET/users/self/verify``."""
    return sign(secret, f"{timestamp}GET{LOGIN_PATH}")


def inst_id(base: str, quote: str) -> str:
    """OKX's spot instrument id: ``BTC-USDT``."""
    return f"{base}-{quote}"
