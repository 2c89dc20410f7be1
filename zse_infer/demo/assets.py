"""The demo assets in ``zse_infer/assets/demo/`` (checkpoint, gallery, sketches; ``manifest.json``: tools/bundle.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import IntegrityError, ManifestError
from ..manifest import sha256_file

MANIFEST = "manifest.json"
#: the folder (under the assets) holding the bundled model's ONNX export
SHIPPED_EXPORT = "export"
FORMAT = 1


def assets_dir() -> Path:
    """The installed ``zse_infer/assets/demo`` folder."""
    return Path(str(resources.files("zse_infer").joinpath("assets", "demo")))


@dataclass(frozen=True)
class DemoItem:
    path: Path
    label: str
    source: str
    licence: str
    record: dict[str, Any]


@dataclass(frozen=True)
class DemoAssets:
    root: Path
    config: str
    checkpoint: Path
    gallery: list[DemoItem]
    queries: list[DemoItem]
    licences: dict[str, dict[str, str]]
    #: sha256 of ``checkpoint`` as the manifest records it
    model_sha256: str = ""

    @property
    def shipped_export(self) -> Path:
        """The bundled model's ONNX export (what ``zse-demo`` runs without torch; made by ``tools/demo_graphs.py``)."""
        return self.root / SHIPPED_EXPORT

    def check_shipped_export(self) -> Path:
        """The shipped export, once its manifest names the bundled weights' hash (older graphs would disagree)."""
        manifest_path = self.shipped_export / MANIFEST
        manifest = _read_manifest(manifest_path, "no shipped ONNX export", "the shipped export's manifest")
        source = manifest.get("source_checkpoint", {}).get("sha256")
        if source != self.model_sha256:
            raise IntegrityError(
                f"{manifest_path}: the shipped graphs were exported from weights with sha256 {source}, but the "
                f"bundled weights have {self.model_sha256}; regenerate them with `python -m tools.demo_graphs`"
            )
        return self.shipped_export


def _read_manifest(path: Path, missing: str, what: str) -> dict[str, Any]:
    """A manifest shipped with the package: a missing one means a partial install, which says so."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ManifestError(f"{path}: {missing} (is the package installed whole?)") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read {what} ({exc})") from exc


def load_demo_assets(root: str | Path | None = None, verify: bool = True) -> DemoAssets:
    """Read (and by default hash-check) the bundled demo assets."""
    root = Path(root) if root is not None else assets_dir()
    path = root / MANIFEST
    manifest = _read_manifest(path, "the demo assets have no manifest", "the demo manifest")
    if manifest.get("format") != FORMAT:
        raise ManifestError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT}")

    def check(rec: dict[str, Any]) -> Path:
        file = root / rec["file"]
        if not file.is_file():
            raise ManifestError(f"{path}: lists {rec['file']}, which is missing")
        if verify and sha256_file(file) != rec["sha256"]:
            raise IntegrityError(f"{file}: sha256 does not match {path}")
        return file

    def item(rec: dict[str, Any]) -> DemoItem:
        if rec["source"] not in manifest["licences"]:
            raise ManifestError(f"{path}: {rec['file']} has source {rec['source']!r} without a licence entry")
        return DemoItem(check(rec), rec["label"], rec["source"], rec["licence"], rec)

    try:
        return DemoAssets(
            root=root,
            config=manifest["config"],
            checkpoint=check(manifest["model"]),
            gallery=[item(rec) for rec in manifest["gallery"]],
            queries=[item(rec) for rec in manifest["queries"]],
            licences=manifest["licences"],
            model_sha256=manifest["model"]["sha256"],
        )
    except KeyError as exc:
        raise ManifestError(f"{path}: missing field {exc}") from exc
