"""The command line: ``main(argv) -> int`` is the public entry point (also ``python -m mirror``)."""

from mirror.cli.main import main

__all__ = ["main"]
