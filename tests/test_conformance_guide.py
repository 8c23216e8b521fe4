"""docs/plugins.md, the guide to writing an exchange plugin, and the code cannot drift apart: every
hook with its signature, every piece of every contract, every capability and every conformance
case is in it, and the README and the architecture page point to it."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from realtrade_core import Capabilities, ExchangeSpec, hookspecs
from realtrade_core.emulator import dialect
from realtrade_core.execution import _METHODS, _VALUES
from realtrade_core.store import Store
from realtrade_core.testing import CASES
from realtrade_core.websocket import contract
from realtrade_core.websocket.connection import BaseWebSocket
from realtrade_core.websocket.exchange import ExchangeConnection

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
HOOKS = [f for name, f in vars(hookspecs).items() if inspect.isfunction(f) and name.startswith("realtrade_")]


def signature(hook) -> str:
    """``realtrade_pre_trade(request: OrderRequest) -> Veto | None``, from the hookspec itself."""
    sig = inspect.signature(hook)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{hook.__name__}({params}) -> {sig.return_annotation}"


@pytest.mark.parametrize("hook", HOOKS, ids=lambda h: h.__name__)
def test_the_guide_lists_every_hook_with_its_signature(hook):
    assert f"`{signature(hook)}`" in GUIDE


def test_the_guide_lists_no_hook_that_does_not_exist():
    named = set(re.findall(r"`(realtrade_[a-z_]+)\(", GUIDE))
    assert named == {h.__name__ for h in HOOKS}


def pieces() -> dict[str, list[str]]:
    """Every member each contract checks at registration, by contract."""
    websocket = ["url", "parse", "subscribe_messages", "unsubscribe_messages", "ping_message", "exchange"]
    declared = ["venue_urls", "emulator_urls", "stream_names", "intervals", "streams_per_request"]
    return {
        "ExchangeSpec": [f.name for f in dataclasses.fields(ExchangeSpec)],
        "Capabilities": [f.name for f in dataclasses.fields(Capabilities)],
        "Store": list(Store._required),
        "ExecutionDialect": [*_VALUES, *_METHODS],
        "store calls": list(contract._CALLS),
        "BaseWebSocket": websocket,
        "ExchangeConnection": [*declared, "stream_request"],
        "EmulatorDialect": ["name", "order_paths", *dialect._REQUIRED_METHODS],
    }


@pytest.mark.parametrize("contract_name", list(pieces()))
def test_the_guide_names_every_piece_of_every_contract(contract_name):
    missing = [name for name in pieces()[contract_name] if not re.search(rf"`{name}[(`]", GUIDE)]
    assert missing == [], f"{contract_name}: {missing}"


def test_the_pieces_checked_are_the_ones_the_code_requires():
    class Bare(BaseWebSocket):
        pass

    class BareConnection(ExchangeConnection):
        pass

    assert set(Bare.missing_members()) <= set(pieces()["BaseWebSocket"])
    assert "stream_request" in BareConnection.missing_members()
    assert set(dialect.EmulatorDialect.missing_members()) == set(pieces()["EmulatorDialect"])


def test_the_guide_lists_every_conformance_case_with_its_needs():
    for case in CASES:
        needs = ", ".join(f"`{n}`" for n in case.needs) or "—"
        assert f"| {case.id} | {case.group} | {case.title} | {needs} |" in GUIDE, case.id


def test_the_readme_and_the_architecture_page_point_to_the_guide():
    assert "(docs/plugins.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(plugins.md)" in (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
