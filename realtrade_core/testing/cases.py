"""The conformance suite's numbered cases and what each needs a plugin to declare.

Standard library only: the guide, ``realtrade new-exchange`` and the suite read the same list.
A case whose needs the plugin does not declare is skipped with the reason (``unmet``), never
failed: a REST-only plugin skips the stream cases, one without stop orders the stop cases.

Needs:

==================  ===================================================================================
need                met when
==================  ===================================================================================
``offline``         the plugin has an emulator dialect (``capabilities.emulator``), or its test class
                    names a file of recorded REST answers (``recorded = "..."``)
``emulator``        the plugin has an emulator dialect and declares ``capabilities.emulator``
``public_stream``   it registers a WebSocket class and declares ``capabilities.public_stream``
``private_stream``  it registers a WebSocket class and declares ``capabilities.private_stream``
``order:<type>``    ``<type>`` ("market", "limit", "stop", "stop_limit") is in ``capabilities.order_types``
==================  ===================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CASES", "GROUPS", "NEEDS", "Case", "case", "unmet"]


@dataclass(frozen=True, slots=True)
class Case:
    """One numbered conformance case."""

    id: str  # "RT-101"
    title: str
    needs: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        return GROUPS[self.id[3]]


#: The hundreds of a case number, and what they test.
GROUPS = {
    "1": "discovery",
    "2": "market metadata",
    "3": "history paging and splice",
    "4": "live bars, reconnect, backfill",
    "5": "order lifecycle",
    "6": "private stream",
    "7": "restart reconciliation",
    "8": "bad messages",
}

NEEDS = {
    "offline": "an emulator dialect or recorded REST answers (set `recorded` on the test class)",
    "emulator": "an emulator dialect (ExchangeSpec.emulator and capabilities.emulator)",
    "public_stream": "a public stream (a WebSocket class and capabilities.public_stream)",
    "private_stream": "a private stream (a WebSocket class and capabilities.private_stream)",
}

_OFFLINE = ("offline",)
_LIVE = ("emulator", "order:market")

CASES: tuple[Case, ...] = (
    Case("RT-101", "the plugin loads by its entry-point name and its registration is valid"),
    Case("RT-102", "it is listed with its distribution and version without importing it"),
    Case("RT-103", "its capabilities agree with what it registers"),
    Case("RT-201", "unmodified ccxt loads its markets: the symbol with precision and limits", _OFFLINE),
    Case("RT-202", "the store gives the market's trading rules (lot step, tick, minimums, fees)", _OFFLINE),
    Case("RT-203", "an unknown symbol is a clear error naming it, before any feed starts", _OFFLINE),
    Case("RT-204", "an unknown or unsupported timeframe is a clear error", _OFFLINE),
    Case("RT-301", "a historical feed gives contiguous closed candles, never the forming one", _OFFLINE),
    Case("RT-302", "history longer than a page is paged without gaps or duplicates", ("emulator",)),
    Case("RT-303", "history from fromdate is spliced into live bars without gaps or duplicates",
         ("emulator", "public_stream")),
    Case("RT-401", "a live feed delivers each closed candle once and reports CONNECTED, DELAYED, LIVE",
         ("emulator", "public_stream")),
    Case("RT-402", "after disconnects the missed candles are backfilled from REST before live resumes",
         ("emulator", "public_stream")),
    Case("RT-501", "the paper broker fills a market order on the next bar with a fee", _OFFLINE),
    Case("RT-502", "a live market order completes with the exchange's size, price and fee", _LIVE),
    Case("RT-503", "partial fills report Partial then Completed with cumulative sizes", (*_LIVE, "order:limit")),
    Case("RT-504", "a resting limit order is cancelled and the exchange confirms it", (*_LIVE, "order:limit")),
    Case("RT-505", "a stop order triggers on the exchange and fills", (*_LIVE, "order:stop")),
    Case("RT-506", "a bracket's exits go after the parent fills; the one reached cancels the other",
         (*_LIVE, "order:limit", "order:stop")),
    Case("RT-601", "the private stream reports an order's updates, fills and balances by client order id",
         ("emulator", "private_stream", "order:market")),
    Case("RT-602", "the private stream reconnects and resubscribes; later fills still arrive",
         ("emulator", "private_stream", "order:market")),
    Case("RT-701", "a restart reattaches the journal's open order and applies an offline fill once",
         (*_LIVE, "order:limit")),
    Case("RT-801", "a malformed public frame is quarantined and the feed goes on", ("emulator", "public_stream")),
    Case("RT-802", "arbitrary text and JSON never escape the stream parsers", ("public_stream",)),
)  # fmt: skip

_BY_ID = {c.id: c for c in CASES}


def case(case_id: str) -> Case:
    """The case numbered ``case_id`` ("RT-101")."""
    return _BY_ID[case_id]


def unmet(needs: tuple[str, ...], spec: Any, *, recorded: bool = False) -> str | None:
    """Why a plugin registering ``spec`` cannot run a case needing ``needs`` (None: it can).
    ``recorded``: its tests supply recorded REST answers."""
    caps = spec.capabilities
    emulator = spec.emulator is not None and caps.emulator
    for need in needs:
        if need == "offline" and not (emulator or recorded):
            return f"{spec.name} declares no emulator dialect and its tests give no recorded REST answers"
        if need == "emulator" and not emulator:
            return f"{spec.name} declares no emulator dialect"
        if need in ("public_stream", "private_stream") and not (spec.websocket is not None and getattr(caps, need)):
            return f"{spec.name} declares no {need.replace('_', ' ')}"
        if need.startswith("order:") and need[6:] not in caps.order_types:
            return f"{spec.name} declares no {need[6:]!r} orders (capabilities.order_types)"
    return None
