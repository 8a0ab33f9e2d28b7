"""Peak RSS of ``mirror import`` given a small gzip bundle whose tar stream opens with a huge pax header.

    .venv/bin/python benchmarks/import_bomb.py [--pax-mib 512] [--dir /tmp/mirror-import-bomb]

The bundle is made by hand (``tests/bundles.py``): one gzip part of about 0.5 MB whose tar stream
starts with a pax extended header declaring and holding ``--pax-mib`` MiB, then one real file; the
manifest agrees with the part, so only the tar reader stands between the bomb and memory. The
import runs in a child process against an empty offline mirror; its peak RSS comes from ``wait4``.
The issue's bar is < 256 MB (the standard library's tar reader took 1.1 GB for 512 MiB).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.measure import run_mirror  # noqa: E402

from tests.bundles import file_entry, pax_bomb, tar_of, write_bundle  # noqa: E402

LIMIT_MB = 256


def build(where: Path, pax_mib: int) -> tuple[Path, Path]:
    """An offline mirror's config and the directory holding the bomb bundle."""
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    config = where / "mirror.toml"
    config.write_text('[mirror]\ndirectory = "m"\n')
    data = b"harmless wheel bytes"
    path = "packages/aa/bb/demo-1.0-py3-none-any.whl"
    usb = where / "usb"
    stream = pax_bomb(pax_mib << 20, tar_of([(path, data)]))
    write_bundle(usb, "mirror-bomb", stream, [file_entry(path, data)], compression="gzip")
    return config, usb


def measure(config: Path, usb: Path, python: str, root: Path) -> tuple[int, float, float, str]:
    """(exit code, wall seconds, peak RSS in MB, last stderr line) of one ``mirror import`` run."""
    return run_mirror([python, "-m", "mirror", "--config", str(config), "import", str(usb)], root)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pax-mib", type=int, default=512)
    parser.add_argument("--dir", default="/tmp/mirror-import-bomb")
    parser.add_argument("--python", default=sys.executable, help="the interpreter that runs mirror")
    parser.add_argument("--root", default=str(ROOT), help="the source tree whose mirror package runs (to compare)")
    args = parser.parse_args()
    config, usb = build(Path(args.dir), args.pax_mib)
    bundle = sum(p.stat().st_size for p in usb.iterdir())
    code, wall, peak, last = measure(config, usb, args.python, Path(args.root))
    print(f"bundle: {bundle / 1e6:.2f} MB on disk, pax header {args.pax_mib} MiB")
    print(f"import: exit {code}, {wall:.2f} s, peak RSS {peak:.1f} MB (limit {LIMIT_MB} MB)")
    print(f"stderr: {last}")
    shutil.rmtree(args.dir, ignore_errors=True)
    return 0 if peak < LIMIT_MB and code == 2 else 1


if __name__ == "__main__":
    sys.exit(main())
