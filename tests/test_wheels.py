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
from importlib.metadata import distribution
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {
    "realtrade-core": ROOT,
    "realtrade-binance": ROOT / "plugins" / "realtrade_binance",
    "realtrade-bybit": ROOT / "plugins" / "realtrade_bybit",
    "realtrade-okx": ROOT / "plugins" / "realtrade_okx",
}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wheels")
    built = {}
    for dist, source in SOURCES.items():
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
                str(source),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        (new,) = set(out.iterdir()) - before
        built[dist] = new
    return built


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
