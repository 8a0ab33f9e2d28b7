"""One-time setup: the bandersnatch venv and the real wheels of the bytes workload."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .paths import BSVENV, WHEELS

BANDERSNATCH_VERSION = "8.2.0"
PYPI = "https://pypi.org/simple/"

#: Real wheels of popular projects, ~380 MB: cp311 (or abi3) manylinux x86_64, pinned.
WHEEL_PINS: tuple[str, ...] = (
    "numpy==1.26.4",
    "scipy==1.11.4",
    "pandas==2.1.4",
    "pyarrow==14.0.2",
    "matplotlib==3.8.2",
    "pillow==10.2.0",
    "grpcio==1.60.0",
    "cryptography==41.0.7",
    "lxml==5.1.0",
    "opencv-python==4.9.0.80",
    "llvmlite==0.41.1",
    "polars==0.20.5",
    "scikit-learn==1.3.2",
    "duckdb==0.9.2",
    "jaxlib==0.4.23",
)
_WHEEL_TARGET = (
    "--python-version", "3.11", "--implementation", "cp",
    "--abi", "cp311", "--abi", "abi3", "--abi", "none",
    "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
    "--platform", "manylinux_2_28_x86_64",
)  # fmt: skip
_PINS_MARKER = ".pins"


def pypi_env() -> dict[str, str]:
    """The environment without pip settings that add other indexes or local wheel folders.

    Config files (``/etc/pip.conf``, the user's) are skipped too; ``PIP_CERT`` and the like stay.
    """
    drop = ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_NO_INDEX", "PIP_CONFIG_FILE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def _python_ok(python: str) -> bool:
    probe = [python, "-c", "import sys; sys.exit(sys.version_info < (3, 12))"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_python312() -> str:
    """A Python >= 3.12 interpreter for bandersnatch: PATH first, then pyenv's versions."""
    candidates = [shutil.which(name) for name in ("python3.12", "python3.13")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for pattern in ("3.12*", "3.13*"):
        candidates += [str(p / "bin" / "python") for p in sorted(pyenv_root.glob(pattern), reverse=True)]
    for candidate in candidates:
        if candidate and _python_ok(candidate):
            return candidate
    raise SystemExit("benchmarks: no Python >= 3.12 found (bandersnatch 8.2 needs one); install python3.12")


def _installed_version(venv: Path) -> str | None:
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    probe = [str(python), "-c", "import importlib.metadata as m; print(m.version('bandersnatch'))"]
    result = subprocess.run(probe, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def ensure_bandersnatch(venv: Path = BSVENV) -> Path:
    """``<venv>/bin/bandersnatch`` at the pinned version, creating the venv if needed."""
    if _installed_version(venv) != BANDERSNATCH_VERSION:
        print(f"setup: creating {venv} with bandersnatch=={BANDERSNATCH_VERSION}", file=sys.stderr)
        if not (venv / "bin" / "python").exists():
            subprocess.run([find_python312(), "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--index-url", PYPI]
        subprocess.run([*pip, f"bandersnatch=={BANDERSNATCH_VERSION}"], check=True, env=pypi_env())
    return venv / "bin" / "bandersnatch"


def ensure_wheels(directory: Path = WHEELS) -> Path:
    """Download the pinned wheels once; a marker file records which pins the folder holds."""
    marker = directory / _PINS_MARKER
    wanted = "\n".join(WHEEL_PINS) + "\n"
    if marker.is_file() and marker.read_text() == wanted:
        return directory
    print(f"setup: downloading {len(WHEEL_PINS)} pinned wheels into {directory}", file=sys.stderr)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.whl"):
        stale.unlink()
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    command += ["--index-url", PYPI, *_WHEEL_TARGET, "-d", str(directory), *WHEEL_PINS]
    subprocess.run(command, check=True, env=pypi_env())
    marker.write_text(wanted)
    return directory


def ensure_bytecode() -> None:
    """Compile mirror's modules to bytecode, as ``pip install`` does for an installed package.

    A checkout installed in editable mode has none, and where ``PYTHONDONTWRITEBYTECODE`` is set
    (it is on these machines) every run compiled ~50 modules from source again: ~60 ms per run
    that an installed mirror never pays (bandersnatch, installed by pip, has its bytecode).
    """
    import mirror
    import mirror_plugins

    for package in (mirror, mirror_plugins):
        directory = Path(package.__file__ or "").parent
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(directory)], check=True)
