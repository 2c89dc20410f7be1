"""The demo's concept table: which emoji and which line icons show the same thing.

``concepts.json`` (copied from the project's shared demo data, then corrected
by looking at contact sheets of the renders; the changes are listed in
``CONCEPTS.md`` beside it) holds one entry per concept:
``name``, ``members`` (CLDR names of the emoji), ``hex`` (their code points,
the file names in the emoji packages), ``cat``/``sub`` (OpenMoji's group and
subgroup) and ``icons`` (matching icon names per icon set). Only these
concepts may be used: others are reserved for an independent check of the
shipped model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError
from .sources import ICON_SETS


@dataclass(frozen=True)
class Concept:
    name: str
    members: tuple[str, ...]
    hex: tuple[str, ...]
    cat: str
    sub: str
    icons: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """A file-name-safe name: lower case, runs of other characters as '-'."""
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")

    @property
    def n_icons(self) -> int:
        return sum(len(v) for v in self.icons.values())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> "Concept":
        try:
            icons = {k: tuple(v) for k, v in data.get("icons", {}).items()}
            unknown = sorted(set(icons) - set(ICON_SETS))
            if unknown:
                raise ConfigError(f"{where}: unknown icon set(s) {unknown}; expected some of {ICON_SETS}")
            return cls(
                name=data["name"],
                members=tuple(data["members"]),
                hex=tuple(data["hex"]),
                cat=data["cat"],
                sub=data["sub"],
                icons=icons,
            )
        except KeyError as exc:
            raise ConfigError(f"{where}: concept entry is missing {exc}") from exc


def concepts_path() -> Path:
    return Path(str(resources.files("zse_infer.demo").joinpath("concepts.json")))


def load_concepts(path: "str | Path | None" = None) -> list[Concept]:
    """The concept table, in file order; names and slugs are checked to be unique."""
    path = Path(path) if path is not None else concepts_path()
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the concept table ({exc})") from exc
    concepts = [Concept.from_dict(entry, f"{path}[{i}]") for i, entry in enumerate(raw)]
    for attr in ("name", "slug"):
        values = [getattr(c, attr) for c in concepts]
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise ConfigError(f"{path}: duplicate concept {attr}s {dupes}")
    return concepts
