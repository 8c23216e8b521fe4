"""Each distribution installs on its own from a built wheel and is found through its entry point.

The wheels are built here, installed with ``pip --target`` into a fresh directory per
combination (core alone, core + one plugin, core + all three), and ``realtrade exchanges --json`` runs
in a child interpreter that sees only that directory and the standard library (``python -S``):
nothing from the development environment can leak into what is discovered. Listing needs no
ccxt or backtrader, so only pluggy and click are copied in beside the wheels.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import distribution
from pathlib import Path

import pytest

try:
    import fcntl
except ImportError:  # Windows: each test process builds its own
    fcntl = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {
    "realtrade-core": ROOT,
    "realtrade-binance": ROOT / "plugins" / "realtrade_binance",
    "realtrade-bybit": ROOT / "plugins" / "realtrade_bybit",
    "realtrade-okx": ROOT / "plugins" / "realtrade_okx",
}


def source_copy(dist: str, into: Path) -> Path:
    """What a distribution is built from, copied out of the checkout: its pyproject.toml, its
    README and its package. pip builds in the folder it is given (build/, *.egg-info), so the
    checkout, which other test processes read meanwhile, is never written to."""
    source, package = SOURCES[dist], dist.replace("-", "_")
    copy = into / dist
    copy.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(source / name, copy / name)
    shutil.copytree(source / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@contextmanager
def only_one_process(lock: Path) -> Iterator[None]:
    """Hold ``lock`` against the other test processes of this run (where the platform can)."""
    with open(lock, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def wheels(tmp_path_factory) -> dict[str, Path]:
    """The four wheels, built once per run: the test processes of a run (pytest-xdist) share the
    parent of their temporary folders; the first one here builds while the others wait."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER") and fcntl is not None:
        shared = shared.parent
    out, built = shared / "wheels", shared / "wheels.json"
    with only_one_process(shared / "wheels.lock"):
        if not built.exists():
            out.mkdir(exist_ok=True)
            sources = shared / "wheel-sources"
            names = {}
            for dist in SOURCES:
                before = set(out.iterdir())
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "pip",
                        "wheel",
                        "--no-deps",
                        "--no-build-isolation",
                        "-q",
                        "-w",
                        str(out),
                        str(source_copy(dist, sources)),
                    ],
                    check=True,
                    capture_output=True,
                    timeout=300,
                )
                (new,) = set(out.iterdir()) - before
                names[dist] = new.name
            built.write_text(json.dumps(names))
    return {dist: out / name for dist, name in json.loads(built.read_text()).items()}


def install(wheels: dict[str, Path], target: Path, *dists: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(target)]
        + [str(wheels[d]) for d in dists],
        check=True,
        capture_output=True,
        timeout=300,
    )
    for name in ("pluggy", "click"):  # listing's only third-party imports (the command line is click)
        dist = distribution(name)
        for item in dist.files or ():
            top = item.parts[0]
            if top.startswith(name):
                src = Path(dist.locate_file(top))
                if src.is_dir() and not (target / top).exists():
                    shutil.copytree(src, target / top)


def listed(target: Path) -> list[dict]:
    code = (
        f"import sys; sys.path.insert(0, {str(target)!r}); "
        "from realtrade_core.cli import main; sys.exit(main(['exchanges', '--json']))"
    )
    # PYTHONPATH stays out too: a source folder on it (a plugin's, with its egg-info) is an install.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    "plugins",
    [
        (),
        ("realtrade-binance",),
        ("realtrade-bybit",),
        ("realtrade-okx",),
        ("realtrade-binance", "realtrade-bybit", "realtrade-okx"),
    ],
    ids=["core-alone", "core+binance", "core+bybit", "core+okx", "core+all"],
)
def test_installed_wheels_are_discovered_and_nothing_else(wheels, tmp_path, plugins):
    install(wheels, tmp_path, "realtrade-core", *plugins)
    rows = listed(tmp_path)
    assert [(r["name"], r["distribution"], r["status"]) for r in rows] == [
        (dist.removeprefix("realtrade-"), dist, "installed") for dist in sorted(plugins)
    ]
    assert all(r["version"] == "0.1.0" for r in rows)


def test_plugin_wheel_declares_its_entry_point_and_core_dependency(wheels, tmp_path):
    import zipfile

    with zipfile.ZipFile(wheels["realtrade-binance"]) as wheel:
        names = wheel.namelist()
        entry_points = wheel.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
        metadata = wheel.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "[realtrade.exchanges]" in entry_points and "binance = realtrade_binance.plugin" in entry_points
    assert "Requires-Dist: realtrade-core" in metadata
    assert not any(n.startswith(("tests/", "realtrade_core/")) for n in names)
