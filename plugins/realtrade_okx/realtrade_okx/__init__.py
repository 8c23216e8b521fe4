"""realtrade plugin for OKX spot: store, data feed, broker, order rules, streams and emulator dialect."""

__version__ = "0.1.0"
