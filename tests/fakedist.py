"""Build throwaway installed distributions (``*.dist-info`` + module) for plugin-discovery tests."""

from __future__ import annotations

import textwrap
from pathlib import Path


def make_dist(
    root: Path,
    dist: str,
    version: str,
    entry_points: dict[str, str],
    modules: dict[str, str],
    group: str = "realtrade.exchanges",
) -> Path:
    """Write ``<dist>-<version>.dist-info`` and the given modules under ``root``.

    ``root`` must then be put on ``sys.path``; importlib.metadata finds the distribution there
    exactly as it finds one installed by pip.
    """
    root.mkdir(parents=True, exist_ok=True)
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = [f"[{group}]"] + [f"{name} = {value}" for name, value in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    return root


VALID_PLUGIN = """
from realtrade_core import ExchangeSpec, hookimpl
from realtrade_core.broker import Broker
from realtrade_core.feed import Data
from realtrade_core.store import Store


class {cls}Store(Store):
    exchange = "{name}"


class {cls}Data(Data):
    exchange = "{name}"


class {cls}Broker(Broker):
    exchange = "{name}"


@hookimpl
def realtrade_exchange():
    return ExchangeSpec(name="{name}", store={cls}Store, broker={cls}Broker, feed={cls}Data)
"""


def valid_plugin(name: str) -> str:
    return VALID_PLUGIN.format(name=name, cls=name.capitalize())
