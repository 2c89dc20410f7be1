"""``python -m tools.demo_graphs``: export the bundled weights into the shipped ONNX folder.

``zse-demo`` runs without torch (the ``demo`` extra) by copying
``zse_infer/assets/demo/export/``: the graphs the demo runs, exported here with
the demo's own recipe from ``zse_infer/assets/demo/zse_demo.safetensors``. Run
this whenever the bundled weights change (``tools.bundle`` does, at its end);
``tests/demo/test_shipped_graphs.py`` fails until the shipped graphs are those
of the bundled weights (by the weights' hash, and with torch by re-exporting
and comparing every graph's outputs).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from zse_infer.demo.assets import MANIFEST, SHIPPED_EXPORT, load_demo_assets
from zse_infer.demo.cli import _export

#: what the shipped manifest records as the source: the weights beside the export folder
#: (an absolute path would name the machine that made it; zse-demo writes the installed path
#: into the copy it makes)
SOURCE_NAME = "zse_demo.safetensors"


def write_shipped_graphs(assets_root: Path | None = None) -> Path:
    """Export the bundled weights into ``<assets>/export`` (replacing it whole, only once the
    new export is complete) and return that folder."""
    assets = load_demo_assets(assets_root)
    target = assets.root / SHIPPED_EXPORT
    with tempfile.TemporaryDirectory(dir=assets.root) as tmp:
        fresh = _export(assets.checkpoint, Path(tmp) / "export", assets.config)
        manifest_path = fresh / MANIFEST
        manifest = json.loads(manifest_path.read_text())
        manifest["source_checkpoint"]["path"] = SOURCE_NAME
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        fresh.rename(target)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=Path, default=None, help="demo assets folder (default: the package's)")
    args = parser.parse_args(argv)
    folder = write_shipped_graphs(args.assets)
    size = sum(p.stat().st_size for p in folder.iterdir())
    print(f"wrote {folder} ({len(list(folder.iterdir()))} files, {size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
