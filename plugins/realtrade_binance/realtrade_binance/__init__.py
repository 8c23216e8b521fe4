"""realtrade plugin for Binance spot: store, data feed, order rules, streams and emulator dialect."""

__version__ = "0.1.0"
