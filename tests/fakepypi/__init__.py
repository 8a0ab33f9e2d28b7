"""A fake PyPI upstream for tests and benchmarks.

``FakePyPI`` serves real wheels and sdists built by :func:`build_wheel` and
:func:`build_sdist` over real HTTP on 127.0.0.1 (PEP 503/691/700/714/792
simple API, PEP 658 metadata files and the legacy ``/pypi/<name>/json`` API),
with deterministic fault injection through :class:`Faults`.
"""

from .app import RequestRecord
from .builder import BuiltFile, build_sdist, build_wheel
from .faults import Faults
from .server import FakePyPI

__all__ = ["BuiltFile", "FakePyPI", "Faults", "RequestRecord", "build_sdist", "build_wheel"]
