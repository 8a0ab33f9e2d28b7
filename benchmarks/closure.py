"""What a realistic allowlist resolves to, and how long the dependency closure takes.

A 30-line requirements file of common top-level projects, over a local fake PyPI whose projects
carry the real dependency structure of those projects (Requires-Dist with their markers and
extras, as of 2024), ten releases each, compiled projects with wheels for CPython 3.10-3.13 on
four platforms, plus 2,000 unrelated projects. The mirror syncs it with ``dependencies = true``
for two target environments and ``latest`` 3; the script prints what the closure holds and how
long it took (first run, then a no-op rerun, then a rerun after an upstream change).

    python benchmarks/closure.py [--releases 10] [--noise 2000]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from contextlib import redirect_stderr
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from packaging.requirements import Requirement  # noqa: E402

from mirror.cli import main  # noqa: E402
from tests.fakepypi import FakePyPI  # noqa: E402

W = "sys_platform == 'win32'"
OLD = "python_version < '3.11'"
# name: (compiled?, Requires-Dist)
GRAPH: dict[str, tuple[bool, list[str]]] = {
    "requests": (False, ["charset-normalizer<4,>=2", "idna<4,>=2.5", "urllib3<3,>=1.21.1", "certifi>=2017.4.17",
                         "PySocks!=1.5.7,>=1.5.6; extra == 'socks'"]),
    "charset-normalizer": (True, []), "idna": (False, []), "urllib3": (False, ["brotli>=1.0.9; extra == 'brotli'"]),
    "certifi": (False, []), "pysocks": (False, []), "brotli": (True, []),
    "django": (False, ["asgiref<4,>=3.7.0", "sqlparse>=0.3.1", f"tzdata; {W}",
                       "argon2-cffi>=19.1.0; extra == 'argon2'"]),
    "asgiref": (False, [f"typing-extensions>=4; {OLD}"]), "sqlparse": (False, []), "tzdata": (False, []),
    "argon2-cffi": (False, ["argon2-cffi-bindings"]), "argon2-cffi-bindings": (True, ["cffi>=1.0.1"]),
    "fastapi": (False, ["starlette<0.39.0,>=0.37.2", "pydantic>=1.7.4", "typing-extensions>=4.8.0"]),
    "starlette": (False, ["anyio<5,>=3.4.0", f"typing-extensions>=3.10.0; {OLD}"]),
    "anyio": (False, ["idna>=2.8", "sniffio>=1.1", f"exceptiongroup>=1.0.2; {OLD}"]),
    "sniffio": (False, []), "exceptiongroup": (False, []), "typing-extensions": (False, []),
    "pydantic": (False, ["annotated-types>=0.4.0", "pydantic-core==2.20.1", "typing-extensions>=4.6.1"]),
    "annotated-types": (False, []), "pydantic-core": (True, ["typing-extensions!=4.7.0,>=4.6.0"]),
    "uvicorn": (False, ["click>=7.0", "h11>=0.8", "colorama>=0.4; sys_platform == 'win32' and extra == 'standard'",
                        "httptools>=0.5.0; extra == 'standard'", "python-dotenv>=0.13; extra == 'standard'",
                        "pyyaml>=5.1; extra == 'standard'", "websockets>=10.4; extra == 'standard'",
                        "uvloop!=0.15.0,!=0.15.1,>=0.14.0; (sys_platform != 'win32' and sys_platform != 'cygwin') "
                        "and platform_python_implementation != 'PyPy' and extra == 'standard'",
                        "watchfiles>=0.13; extra == 'standard'"]),
    "click": (False, [f"colorama; {W}"]), "colorama": (False, []), "h11": (False, []), "httptools": (True, []),
    "python-dotenv": (False, []), "pyyaml": (True, []), "websockets": (True, []), "uvloop": (True, []),
    "watchfiles": (True, ["anyio>=3.0.0"]),
    "pandas": (True, ["numpy>=1.23.2; python_version == '3.11'", "numpy>=1.26.0; python_version >= '3.12'",
                      "python-dateutil>=2.8.2", "pytz>=2020.1", "tzdata>=2022.7"]),
    "numpy": (True, []), "python-dateutil": (False, ["six>=1.5"]), "six": (False, []), "pytz": (False, []),
    "sqlalchemy": (True, ["typing-extensions>=4.6.0", "greenlet!=0.4.17; python_version < '3.13' and "
                          "(platform_machine == 'aarch64' or platform_machine == 'x86_64' or "
                          "platform_machine == 'AMD64')"]),
    "greenlet": (True, []),
    "celery": (False, ["billiard<5.0,>=4.2.0", "kombu<6.0,>=5.3.4", "vine<6.0,>=5.1.0", "click<9.0,>=8.1.2",
                       "click-didyoumean>=0.3.0", "click-repl>=0.2.0", "click-plugins>=1.1.1", "tzdata>=2022.7",
                       "python-dateutil>=2.8.2", "redis!=4.5.5,<6.0.0,>=4.5.2; extra == 'redis'"]),
    "billiard": (False, []), "kombu": (False, ["amqp<6.0.0,>=5.1.1", "vine", "tzdata; python_version >= '3.9'"]),
    "amqp": (False, ["vine<6.0.0,>=5.0.0"]), "vine": (False, []), "click-didyoumean": (False, ["click>=7"]),
    "click-repl": (False, ["click>=7.0", "prompt-toolkit>=3.0.36"]), "click-plugins": (False, ["click>=4.0"]),
    "prompt-toolkit": (False, ["wcwidth"]), "wcwidth": (False, []),
    "redis": (False, ["async-timeout>=4.0.3; python_full_version < '3.11.3'"]), "async-timeout": (False, []),
    "boto3": (False, ["botocore<1.35.0,>=1.34.0", "jmespath<2.0.0,>=0.7.1", "s3transfer<0.11.0,>=0.10.0"]),
    "botocore": (False, ["jmespath<2.0.0,>=0.7.1", "python-dateutil<3.0.0,>=2.1", "urllib3!=2.2.0,<3,>=1.25.4"]),
    "jmespath": (False, []), "s3transfer": (False, ["botocore<2.0a.0,>=1.33.2"]),
    "pytest": (False, ["iniconfig", "packaging", "pluggy<2,>=1.5", f"exceptiongroup>=1.0.0rc8; {OLD}",
                       f"tomli>=1; {OLD}", f"colorama; {W}"]),
    "iniconfig": (False, []), "packaging": (False, []), "pluggy": (False, []), "tomli": (False, []),
    "black": (True, ["click>=8.0.0", "mypy-extensions>=0.4.3", "packaging>=22.0", "pathspec>=0.9.0",
                     "platformdirs>=2", f"tomli>=1.1.0; {OLD}", f"typing-extensions>=4.0.1; {OLD}"]),
    "mypy-extensions": (False, []), "pathspec": (False, []), "platformdirs": (False, []),
    "mypy": (True, ["typing-extensions>=4.1.0", "mypy-extensions>=1.0.0", f"tomli>=1.1.0; {OLD}"]),
    "flask": (False, ["Werkzeug>=3.0.0", "Jinja2>=3.1.2", "itsdangerous>=2.1.2", "click>=8.1.3", "blinker>=1.6.2"]),
    "werkzeug": (False, ["MarkupSafe>=2.1.1"]), "jinja2": (False, ["MarkupSafe>=2.0"]), "markupsafe": (True, []),
    "itsdangerous": (False, []), "blinker": (False, []),
    "httpx": (False, ["anyio", "certifi", "httpcore==1.*", "idna", "sniffio", "h2<5,>=3; extra == 'http2'"]),
    "httpcore": (False, ["certifi", "h11<0.15,>=0.13"]), "h2": (False, ["hyperframe<7,>=6.0", "hpack<5,>=4.0"]),
    "hyperframe": (False, []), "hpack": (False, []),
    "gunicorn": (False, ["packaging"]),
    "psycopg": (False, ["typing-extensions>=4.4", f"tzdata; {W}", "psycopg-binary==3.2.1; implementation_name != "
                        "'pypy' and extra == 'binary'"]),
    "psycopg-binary": (True, []),
    "rich": (False, ["markdown-it-py>=2.2.0", "pygments<3.0.0,>=2.13.0"]), "markdown-it-py": (False, ["mdurl~=0.1"]),
    "mdurl": (False, []), "pygments": (False, []),
    "scikit-learn": (True, ["numpy>=1.19.5", "scipy>=1.6.0", "joblib>=1.2.0", "threadpoolctl>=3.1.0"]),
    "scipy": (True, ["numpy<2.3,>=1.23.5"]), "joblib": (False, []), "threadpoolctl": (False, []),
    "matplotlib": (True, ["contourpy>=1.0.1", "cycler>=0.10", "fonttools>=4.22.0", "kiwisolver>=1.3.1",
                          "numpy>=1.23", "packaging>=20.0", "pillow>=8", "pyparsing>=2.3.1", "python-dateutil>=2.7"]),
    "contourpy": (True, ["numpy>=1.23"]), "cycler": (False, []), "fonttools": (True, []), "kiwisolver": (True, []),
    "pillow": (True, []), "pyparsing": (False, []),
    "cryptography": (True, ["cffi>=1.12; platform_python_implementation != 'PyPy'"]),
    "cffi": (True, ["pycparser"]), "pycparser": (False, []),
    "alembic": (False, ["SQLAlchemy>=1.3.0", "Mako", "typing-extensions>=4"]), "mako": (False, ["MarkupSafe>=0.9.2"]),
    "jsonschema": (False, ["attrs>=22.2.0", "jsonschema-specifications>=2023.03.6", "referencing>=0.28.4",
                           "rpds-py>=0.7.1"]),
    "attrs": (False, []), "jsonschema-specifications": (False, ["referencing>=0.31.0"]),
    "referencing": (False, ["attrs>=22.2.0", "rpds-py>=0.7.0"]), "rpds-py": (True, []),
    "sentry-sdk": (False, ["certifi", "urllib3>=1.26.11"]), "tenacity": (False, []), "orjson": (True, []),
    "aiohttp": (True, ["aiohappyeyeballs>=2.3.0", "aiosignal>=1.1.2", "attrs>=17.3.0", "frozenlist>=1.1.1",
                       "multidict<7.0,>=4.5", "yarl<2.0,>=1.0", f"async-timeout<5.0,>=4.0; {OLD}"]),
    "aiohappyeyeballs": (False, []), "aiosignal": (False, ["frozenlist>=1.1.0"]), "frozenlist": (True, []),
    "multidict": (True, []), "yarl": (True, ["idna>=2.0", "multidict>=4.0"]), "structlog": (False, []),
    "grpcio": (True, []), "protobuf": (True, []),
}  # fmt: skip
REQUIREMENTS = """\
# what a web team runs: 30 lines, pinned loosely, with comments, extras and an option pip would use
--index-url https://pypi.org/simple/
django
requests[socks]
fastapi
uvicorn[standard]
pandas
sqlalchemy
celery[redis]
boto3
pytest
black
mypy
flask
httpx[http2]
gunicorn
psycopg[binary]
rich
scikit-learn
matplotlib
cryptography
alembic
jsonschema
sentry-sdk
tenacity
orjson
aiohttp
structlog
grpcio
protobuf
pydantic
"""
TARGETS = (
    '[{ python = "3.12", platform = "manylinux_2_28_x86_64" },'
    ' { python = "3.13", platform = "manylinux_2_28_aarch64" }]'
)
TAGS = [f"cp3{m}-cp3{m}-{p}" for m in (10, 11, 12, 13) for p in (
    "manylinux_2_17_x86_64", "manylinux_2_17_aarch64", "macosx_11_0_arm64", "win_amd64")]  # fmt: skip


def unpinned(requirement: str) -> str:
    """The requirement without its version specifier: the fake releases are 1.0, 1.1, ..., which the
    real ranges (``pydantic-core==2.20.1``) would not match; names, extras and markers stay."""
    parsed = Requirement(requirement)
    extras = f"[{','.join(sorted(parsed.extras))}]" if parsed.extras else ""
    return f"{parsed.name}{extras}" + (f"; {parsed.marker}" if parsed.marker else "")


def populate(up: FakePyPI, releases: int, noise: int) -> int:
    files = 0
    for name, (compiled, requires) in GRAPH.items():
        for minor in range(releases):
            tags = TAGS if compiled else ["py3-none-any"]
            up.add_release(name, f"1.{minor}", requires_dist=[unpinned(r) for r in requires], wheel_tags=tags)
            files += len(tags) + 1
    for i in range(noise):
        up.add_release(f"unrelated-{i:05d}", "1.0", sdist=False)
        files += 1
    return files


def sync(config: Path) -> tuple[float, str]:
    err = io.StringIO()
    started = time.perf_counter()
    with redirect_stderr(err):
        code = main(["--config", str(config), "sync"])
    took = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"sync failed ({code}):\n{err.getvalue()}")
    lines = err.getvalue().strip().splitlines()
    closure = [line for line in lines if line.startswith("dependency closure:") and "after" in line]
    return took, " | ".join([*closure, lines[-1]])


def run(releases: int, noise: int) -> dict[str, object]:
    with FakePyPI() as up, tempfile.TemporaryDirectory() as tmp:
        built = time.perf_counter()
        upstream_files = populate(up, releases, noise)
        built = time.perf_counter() - built
        work = Path(tmp)
        (work / "requirements.txt").write_text(REQUIREMENTS)
        config = work / "mirror.toml"
        config.write_text(
            f'[mirror]\ndirectory = "m"\nupstream = "{up.simple_url}"\nworkers = 16\n'
            '[filters]\nenabled = ["allowlist", "environments", "latest"]\n'
            '[filters.allowlist]\nrequirements = ["requirements.txt"]\ndependencies = true\n'
            f"[filters.environments]\ntargets = {TARGETS}\nsdists = false\n"
            "[filters.latest]\ncount = 3\n"
        )
        first, first_summary = sync(config)
        web = work / "m" / "web"
        root = json.loads((web / "simple" / "index.v1_json").read_text())
        mirrored_files = list((web / "packages").rglob("*.whl"))
        mirrored_bytes = sum(p.stat().st_size for p in mirrored_files)
        noop, _ = sync(config)
        up.add_release("httpx", "9.0", requires_dist=["anyio", "certifi", "httpcore==1.*", "idna", "zstandard"])
        up.add_release("zstandard", "1.0", wheel_tags=TAGS)
        changed, changed_summary = sync(config)
        after = json.loads((web / "simple" / "index.v1_json").read_text())
        return {
            "requirements_lines": len(REQUIREMENTS.splitlines()),
            "upstream_projects": len(GRAPH) + noise,
            "upstream_files": upstream_files,
            "build_upstream_s": round(built, 1),
            "closure_projects": len(root["projects"]),
            "mirrored_wheels": len(mirrored_files),
            "mirrored_bytes": mirrored_bytes,
            "first_sync_s": round(first, 2),
            "first_summary": first_summary,
            "noop_rerun_s": round(noop, 3),
            "after_upstream_change_s": round(changed, 2),
            "after_change_summary": changed_summary,
            "closure_projects_after_change": len(after["projects"]),
        }


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--releases", type=int, default=10)
    parser.add_argument("--noise", type=int, default=2000)
    args = parser.parse_args()
    print(json.dumps(run(args.releases, args.noise), indent=2))


if __name__ == "__main__":
    cli()
