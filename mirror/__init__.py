"""mirror: a PyPI mirror syncer that writes a static PEP 503/691 simple index."""

__version__ = "0.1.0"
