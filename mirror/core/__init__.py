"""The pure core: no I/O, no clock, no network. Tests call it with bytes and data."""
