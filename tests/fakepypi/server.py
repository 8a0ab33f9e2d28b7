"""``FakePyPI``: a real HTTP fake of PyPI running in a background thread.

Example::

    with FakePyPI() as up:
        up.add_release("demo", "1.0")
        subprocess.run([..., "--index-url", up.simple_url, "demo"])
        up.faults.fail("*.whl", status=503)

The server runs an aiohttp application on its own event loop in a daemon
thread, bound to 127.0.0.1 on an ephemeral port (bound before ``start()``
returns).  All mutation methods are thread-safe and each bumps the global
serial by one, stamping the touched project with the new serial.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Self

from aiohttp import web

from .app import RequestLog, RequestRecord, Site
from .builder import BuiltFile, build_sdist, build_wheel
from .faults import Faults
from .model import Index
from .render import FileUrlStyle, ProvenanceMode, SiteOptions

__all__ = ["FakePyPI", "RequestRecord"]


class FakePyPI:
    """A fake PyPI upstream: simple API (HTML + JSON), files and legacy JSON.

    :param html_only: behave like a static PEP 503 index (pypiserver-like):
        always HTML, no JSON endpoints and no serials anywhere.
    :param file_url_style: ``"pypi"`` (absolute ``/packages/aa/bb/hash/f``),
        ``"flat"`` (absolute ``/files/f``) or ``"relative"``
        (``../../packages/...`` relative to the project page).
    :param hashes: when False, pages carry no file hashes.
    :param provenance: PEP 740: ``"plain"`` links each file's provenance object
        (served at ``/integrity/<filename>/provenance``), ``"hashed"`` adds
        its ``#sha256=`` to the link.
    :param serials_as_text: JSON ``_last-serial`` as decimal strings.
    :param port: port to bind (0 = ephemeral).
    :param record_requests: keep the :attr:`requests` log (disable for
        long benchmarks).
    """

    def __init__(
        self,
        *,
        html_only: bool = False,
        file_url_style: FileUrlStyle = "pypi",
        hashes: bool = True,
        provenance: ProvenanceMode = "none",
        serials_as_text: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        record_requests: bool = True,
    ) -> None:
        if file_url_style not in ("pypi", "flat", "relative"):
            raise ValueError(f"unknown file_url_style {file_url_style!r}")
        self.faults = Faults()
        self._index = Index()
        self._log = RequestLog(record_requests)
        self._settings = (html_only, file_url_style, hashes)
        self._extra = (provenance, serials_as_text)
        self._host, self._port = host, port
        self._url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> Self:
        """Bind the port and start serving; returns once requests are accepted."""
        if self._thread is not None:
            raise RuntimeError("FakePyPI is already running")
        sock = _bind(self._host, self._port)
        host, port = sock.getsockname()[:2]
        url = f"http://{host}:{port}"
        html_only, style, hashes = self._settings
        site = Site(self._index, self.faults, self._log, SiteOptions(url, style, hashes, html_only, *self._extra))
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=f"fakepypi-{port}", daemon=True)
        thread.start()
        try:
            self._runner = asyncio.run_coroutine_threadsafe(_serve(site, sock), loop).result()
        except BaseException:
            _stop_loop(loop, thread)
            sock.close()
            raise
        self._loop, self._thread, self._url = loop, thread, url
        return self

    def stop(self) -> None:
        """Stop serving and join the server thread (idempotent)."""
        loop, thread, runner = self._loop, self._thread, self._runner
        if loop is None or thread is None:
            return
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result()
        _stop_loop(loop, thread)
        self._loop = self._thread = self._runner = None
        self._url = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT`` (only while running)."""
        if self._url is None:
            raise RuntimeError("FakePyPI is not running")
        return self._url

    @property
    def simple_url(self) -> str:
        """The simple index root, ``<url>/simple/``."""
        return f"{self.url}/simple/"

    # -- model mutations -----------------------------------------------------

    def add_release(
        self,
        name: str,
        version: str,
        *,
        files: Sequence[BuiltFile] | None = None,
        requires_dist: Sequence[str] = (),
        requires_python: str | None = None,
        upload_time: datetime | str | None = None,
        wheel_tags: Sequence[str] = ("py3-none-any",),
        sdist: bool = True,
        payload_size: int = 0,
    ) -> list[BuiltFile]:
        """Upload a release (one mutation) and return the files added.

        Without ``files``, builds one wheel per tag in ``wheel_tags`` (each
        with ``payload_size`` payload bytes) plus an sdist if ``sdist``.
        Adding to an existing version appends files to that release.
        """
        if files is None:
            files = _build_release(name, version, requires_dist, requires_python, wheel_tags, sdist, payload_size)
        built = list(files)
        self._index.add_files(name, version, built, requires_python=requires_python, upload_time=upload_time)
        return built

    def add_file(
        self,
        name: str,
        version: str,
        built: BuiltFile,
        upload_time: datetime | str | None = None,
    ) -> BuiltFile:
        """Upload a single prebuilt file (e.g. ``BuiltFile.from_path(...)``)."""
        self._index.add_files(name, version, [built], requires_python=None, upload_time=upload_time)
        return built

    def yank(self, name: str, version: str, reason: str | None = None) -> None:
        """Yank a release (PEP 592)."""
        self._index.yank(name, version, reason)

    def unyank(self, name: str, version: str) -> None:
        """Un-yank a release."""
        self._index.unyank(name, version)

    def remove_file(self, name: str, filename: str) -> None:
        """Delete one file (its release remains, possibly empty)."""
        self._index.remove_file(name, filename)

    def remove_release(self, name: str, version: str) -> None:
        """Delete a release and its files."""
        self._index.remove_release(name, version)

    def remove_project(self, name: str) -> None:
        """Delete a whole project."""
        self._index.remove_project(name)

    def set_status(self, name: str, status: str | None, reason: str | None = None) -> None:
        """Set a PEP 792 status (``None`` clears it, i.e. active)."""
        self._index.set_status(name, status, reason)

    # -- model queries -------------------------------------------------------

    @property
    def serial(self) -> int:
        """The current global serial (0 before the first mutation)."""
        return self._index.serial

    def project_serial(self, name: str) -> int:
        """A project's last serial (KeyError if unknown)."""
        return self._index.project_serial(name)

    def project_names(self) -> list[str]:
        """Normalized names of all current projects."""
        return [p.name for p in self._index.projects()]

    def file_url(self, filename: str) -> str:
        """Absolute download URL of a live file (KeyError if unknown)."""
        entry = self._index.blob_by_filename(filename)
        if entry is None:
            raise KeyError(filename)
        if self._settings[1] == "flat":
            return f"{self.url}/files/{filename}"
        return f"{self.url}/packages/{entry.blob_path}"

    # -- request log ---------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, oldest first."""
        return self._log.snapshot()

    def clear_requests(self) -> None:
        """Empty the request log."""
        self._log.clear()


def _build_release(
    name: str,
    version: str,
    requires_dist: Sequence[str],
    requires_python: str | None,
    wheel_tags: Sequence[str],
    sdist: bool,
    payload_size: int,
) -> list[BuiltFile]:
    """Default files of a release: one wheel per tag, then an optional sdist."""
    files = [
        build_wheel(
            name,
            version,
            tag=tag,
            payload_size=payload_size,
            requires_dist=requires_dist,
            requires_python=requires_python,
        )
        for tag in wheel_tags
    ]
    if sdist:
        files.append(build_sdist(name, version, requires_dist=requires_dist, requires_python=requires_python))
    return files


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket, so the port is known before serving starts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


async def _serve(site: Site, sock: socket.socket) -> web.AppRunner:
    """Start the aiohttp runner on an already-bound socket."""
    runner = web.AppRunner(site.make_app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()
