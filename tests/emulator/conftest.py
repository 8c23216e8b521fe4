"""Generic fixtures for emulator tests: a polling wait and a minimal test dialect."""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

TOY_DIALECT_FILE = Path(__file__).with_name("toy_dialect.py")


def _load_toy_module():
    # Loaded by path (tests run with --import-mode=importlib, so this folder is not on sys.path).
    name = "realtrade_tests_toy_dialect"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TOY_DIALECT_FILE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.005) -> object:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., object]:
    return wait_until


@pytest.fixture
def toy_dialect() -> type:
    """A minimal EmulatorDialect (REST ping/time/order, a kline WebSocket); see toy_dialect.py."""
    return _load_toy_module().ToyDialect


@pytest.fixture
def toy_emulator(toy_dialect):
    """A started emulator with the toy dialect and a manual clock; stopped after the test."""
    from realtrade_core.emulator import Emulator

    emu = Emulator(toy_dialect, speed=None, history=50, seed=7).start()
    try:
        yield emu
    finally:
        emu.stop()
