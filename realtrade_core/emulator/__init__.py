"""The local exchange emulator: market replay, matching engine and the wire dialects' server.

The engine (:mod:`.engine`), its records (:mod:`.model`), the clock (:mod:`.clock`) and market
replay (:mod:`.replay`) use only the standard library. The HTTP/WebSocket server lives in
:mod:`.server` and is the only part that imports aiohttp, so importing this package stays cheap:
``Emulator`` is resolved (and aiohttp imported) on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Emulator", "EmulatorError"]

if TYPE_CHECKING:
    from .server import Emulator, EmulatorError


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import server

        value = getattr(server, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
