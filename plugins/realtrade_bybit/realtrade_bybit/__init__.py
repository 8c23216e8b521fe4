"""realtrade plugin for Bybit spot: store, broker, data feed, streams and emulator dialect."""

__version__ = "0.1.0"
