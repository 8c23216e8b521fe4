"""The installed distribution is found through its entry point and its registration is valid."""

from importlib.metadata import version

from realtrade_core.plugins import PluginHost


def test_okx_is_discovered_and_loads_by_name():
    (row,) = [r for r in PluginHost().list_exchanges() if r.name == "okx"]
    assert (row.distribution, row.version) == ("realtrade-okx", version("realtrade-okx"))
    spec = PluginHost().load_exchange("okx")
    assert spec.name == "okx" and spec.store.exchange == "okx"
