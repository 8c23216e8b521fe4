"""Fixtures shared by the live-broker tests: one emulator and one store of its own per exchange;
and how many processes the suite runs in."""

from __future__ import annotations

import os

import pytest
from test_broker_live import make_emulator, new_store

#: Test processes per CPU. Most tests spend their time waiting: on an emulator's clock, a
#: WebSocket frame, a child process. Two processes per CPU keep the CPUs busy through those waits.
WORKERS_PER_CPU = 2


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Where pytest-xdist is installed (the test extra), the suite runs in parallel processes
    (``-n auto``) unless the command line says how many (``-n 0``: one process), ``-s`` asks to
    see what the tests print (the parity tables; only the main process's output is shown) or
    ``--pdb`` to debug. Without pytest-xdist it runs in one process, as before."""
    if not config.pluginmanager.hasplugin("xdist") or hasattr(config, "workerinput"):
        return  # no pytest-xdist, or this is one of its processes
    if config.getoption("numprocesses") is None and config.getoption("capture") != "no":
        if not config.getoption("usepdb"):
            config.option.numprocesses = "auto"


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: WORKERS_PER_CPU per CPU, or one process when the output is not captured
    (``-s``). ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides when it is set."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # pytest-xdist's own hook reads it
    if config.getoption("capture") == "no":
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return WORKERS_PER_CPU * cpus


@pytest.fixture(scope="session", autouse=True)
def listing_cache(tmp_path_factory):
    """The cache of ``realtrade exchanges`` (realtrade_core.discovery) in a folder of the test run,
    for this process and the commands it starts, not in the user's cache folder."""
    previous = os.environ.get("REALTRADE_CACHE_DIR")
    os.environ["REALTRADE_CACHE_DIR"] = str(tmp_path_factory.mktemp("realtrade-cache"))
    yield
    if previous is None:
        os.environ.pop("REALTRADE_CACHE_DIR", None)
    else:
        os.environ["REALTRADE_CACHE_DIR"] = previous


@pytest.fixture(params=["binance", "bybit"])
def exchange(request) -> str:
    return request.param


@pytest.fixture
def emulator(exchange):
    with make_emulator(exchange) as emu:
        yield emu


@pytest.fixture
def store(exchange, emulator):
    store = new_store(exchange, emulator)
    yield store
    store.stop()


@pytest.fixture
def journal_path(tmp_path):
    return str(tmp_path / "journal.sqlite3")
