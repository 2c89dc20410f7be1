"""The ``@iconify/json`` icon sets behind the demo data: licences, roles, SVGs.

Development time only. ``@iconify/json`` (MIT as a package) holds ~240 icon
sets, each under its own licence (``info.license`` in ``json/<prefix>.json``).
The trained weights are a derivative we ship, so a set is kept only if its
licence lets us redistribute a derivative without imposing terms on the
weights (:data:`ALLOWED_LICENCES`); attribution licences (CC-BY) are kept and
credited in ``icon_sets.json``.

Each kept set plays one role (:data:`ROLES`): ``drawing`` (outline icons that
look like a pen sketch; the queries) or ``photo`` (colour emoji and colour
illustrations; the gallery). Sets that are neither (logos, filled glyph
fonts, pixel art, flags) are not used.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from zse_infer.errors import ConfigError, InputError


@dataclass(frozen=True)
class Package:
    """A pinned npm package (pinned so that a rebuild renders the same drawings)."""

    package: str  # npm package name
    version: str

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"

    @property
    def tarball(self) -> str:
        """The file name ``npm pack`` writes: scope folded into the name, '/' dropped."""
        return self.package.lstrip("@").replace("/", "-") + f"-{self.version}.tgz"


# MIT as a package; each icon set in it under its own licence (data/icon_sets.json).
ICONIFY = Package("@iconify/json", "2.2.535")

# Licences (SPDX) that allow shipping trained weights without conditions on
# them beyond attribution. Excluded: share-alike (CC-BY-SA: would put the
# weights under share-alike), GPL and MPL (copyleft; whether weights are a
# derivative work is unsettled, so we do not bet on it), OFL (written for
# fonts; its terms for derived works are unclear for model weights),
# non-commercial (NC), no-derivatives (ND) and unknown licences.
ALLOWED_LICENCES = frozenset(
    {"MIT", "ISC", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "Unlicense", "CC0-1.0", "CC-BY-3.0", "CC-BY-4.0"}
)


def licence_allowed(spdx: str | None) -> bool:
    return spdx in ALLOWED_LICENCES


@dataclass(frozen=True)
class Role:
    """How one set is used: role, which icons (by name pattern), and how names map to concepts."""

    role: str  # "drawing" | "photo"
    # Keep icons whose name matches; the first group is the concept name (style suffix cut off).
    pattern: str = r"(.+)"
    # Emoji sets: names are CLDR names, matched through the emoji table (code points).
    emoji: bool = False
    # Stroke-drawn sets: the stroke width can be varied (a cheap, real augmentation).
    stroke: bool = False


def _only(suffix: str) -> str:
    """Icons of one style, named ``<name>-<suffix>``."""
    return rf"(.+)-{suffix}"


def _without(*suffixes: str) -> str:
    """Icons whose name ends in none of the (filled/solid) style suffixes."""
    return rf"(?!.*-(?:{'|'.join(suffixes)})$)(.+)"


# Chosen by licence and by look (renders checked by eye, see tools/README.md "The data").
ROLES: dict[str, Role] = {
    # Drawings: outline sets, thin even strokes, no fills; style variants cut to the outline one.
    "tabler": Role("drawing", _without("filled"), stroke=True),
    "lucide": Role("drawing", stroke=True),
    "lucide-lab": Role("drawing", stroke=True),
    "iconoir": Role("drawing", _without("solid"), stroke=True),
    "ph": Role("drawing", _only("light")),  # Phosphor light: thin outline
    "hugeicons": Role("drawing", stroke=True),
    "icon-park-outline": Role("drawing", stroke=True),
    "streamline-freehand": Role("drawing"),  # hand-drawn look: the closest to a sketch
    "streamline": Role("drawing", _without("solid", "remix")),
    "fluent": Role("drawing", _only("24-regular")),
    "mingcute": Role("drawing", _only("line")),
    "solar": Role("drawing", _only("linear"), stroke=True),
    "carbon": Role("drawing", _without("filled", "solid")),
    "healthicons": Role("drawing", _only("outline")),
    "mdi": Role("drawing", _only("outline")),
    "material-symbols-light": Role("drawing", _only("outline")),
    "ri": Role("drawing", _only("line")),
    "clarity": Role("drawing", _only("line")),
    "uil": Role("drawing"),
    "la": Role("drawing", _without("solid")),
    "tdesign": Role("drawing", _without("filled")),
    "majesticons": Role("drawing", _only("line")),
    "basil": Role("drawing", _only("outline")),
    "iconamoon": Role("drawing", _only("light")),
    "lets-icons": Role("drawing", _only("light")),
    "pepicons-pencil": Role("drawing", _without("filled", "off")),
    "akar-icons": Role("drawing", _without("fill"), stroke=True),
    "bi": Role("drawing", _without("fill")),
    "teenyicons": Role("drawing", _only("outline")),
    "eva": Role("drawing", _only("outline")),
    "stash": Role("drawing", _only("light")),
    "flowbite": Role("drawing", _only("outline")),
    "boxicons": Role("drawing", _without("filled")),
    "famicons": Role("drawing", _only("outline")),
    "mynaui": Role("drawing", _without("solid")),
    "streamline-ultimate": Role("drawing", _without("bold"), stroke=True),
    "streamline-plump": Role("drawing", _without("solid", "remix"), stroke=True),
    "streamline-sharp": Role("drawing", _without("solid", "remix"), stroke=True),
    "streamline-flex": Role("drawing", _without("solid", "remix")),
    "reicon": Role("drawing", _without("filled", "duotone")),
    "keyline-icons": Role("drawing", _without("duotone", "fill", "tone", "sharp"), stroke=True),
    "griddy-icons": Role("drawing", _without("filled")),
    "si": Role("drawing", _only("line"), stroke=True),
    "f7": Role("drawing", _without("fill")),
    "jam": Role("drawing", _without("f")),
    "heroicons": Role("drawing", r"(?!.*solid)(.+)"),
    "fa6-regular": Role("drawing"),
    "gg": Role("drawing"),
    "proicons": Role("drawing", stroke=True),
    "humbleicons": Role("drawing", stroke=True),
    "meteor-icons": Role("drawing", stroke=True),
    "system-uicons": Role("drawing"),
    "lineicons": Role("drawing"),
    "gravity-ui": Role("drawing", _without("fill")),
    "mage": Role("drawing", _without("fill"), stroke=True),
    "uit": Role("drawing"),
    "charm": Role("drawing", stroke=True),
    "quill": Role("drawing", stroke=True),
    "cuida": Role("drawing", _only("outline")),
    "grommet-icons": Role("drawing", stroke=True),
    "mi": Role("drawing"),
    "ant-design": Role("drawing", _only("outlined")),
    "weui": Role("drawing", _only("outlined")),
    "ep": Role("drawing"),
    "prime": Role("drawing"),
    "octicon": Role("drawing", r"(.+)-24"),
    "radix-icons": Role("drawing"),
    "ei": Role("drawing"),
    "icons8": Role("drawing"),
    "qlementine-icons": Role("drawing", r"(.+)-16"),
    "uiw": Role("drawing"),
    "nimbus": Role("drawing"),
    "bytesize": Role("drawing", stroke=True),
    "fluent-emoji-high-contrast": Role("drawing", emoji=True),  # black line art of emoji
    "emojione-monotone": Role("drawing", emoji=True),  # black-and-white emoji, another artist
    # Photos: colour emoji and colour illustrations.
    "fluent-emoji-flat": Role("photo", emoji=True),
    "fluent-emoji": Role("photo", emoji=True),
    "noto": Role("photo", emoji=True),
    "twemoji": Role("photo", emoji=True),
    "emojione": Role("photo", emoji=True),
    "streamline-emojis": Role("photo", emoji=True),
    "flat-color-icons": Role("photo"),
    "fluent-color": Role("photo", _only("24")),
    "streamline-color": Role("photo", _only("flat")),
    "streamline-plump-color": Role("photo", _only("flat")),
    "streamline-flex-color": Role("photo", _only("flat")),
    "streamline-sharp-color": Role("photo", _only("flat")),
    "streamline-kameleon-color": Role("photo", _without("duo")),
    "streamline-ultimate-color": Role("photo"),
    "streamline-freehand-color": Role("photo"),
}
# Sets drawn by one hand in two roles (line art and colour of the same design): a query
# and a gallery image of one family match by shape alone, so evaluation keeps them apart.
FAMILIES = {
    "fluent-emoji-high-contrast": "fluent-emoji",
    "fluent-emoji-flat": "fluent-emoji",
    "fluent-emoji": "fluent-emoji",
    "emojione-monotone": "emojione",
    "emojione": "emojione",
    "fluent": "fluent",
    "fluent-color": "fluent",
    "streamline-freehand": "streamline-freehand",
    "streamline-freehand-color": "streamline-freehand",
    "streamline": "streamline",
    "streamline-color": "streamline",
    "streamline-plump-color": "streamline-plump",
    "streamline-flex-color": "streamline-flex",
    "streamline-sharp-color": "streamline-sharp",
    "streamline-ultimate-color": "streamline-ultimate",
}


def family(prefix: str) -> str:
    """The artwork family of a set (itself unless listed in :data:`FAMILIES`)."""
    return FAMILIES.get(prefix, prefix)


DRAWING_SETS = tuple(k for k, r in ROLES.items() if r.role == "drawing")
PHOTO_SETS = tuple(k for k, r in ROLES.items() if r.role == "photo")


def iconify_root(cache: Path) -> Path:
    from .fetch import package_dir  # fetch imports this module for ICONIFY

    return package_dir(cache, ICONIFY)


@lru_cache(maxsize=64)
def load_set(cache: str, prefix: str) -> dict[str, Any]:
    """One set's JSON (``json/<prefix>.json``)."""
    path = iconify_root(Path(cache)) / "json" / f"{prefix}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read icon set {prefix!r} ({exc}); run python -m tools.fetch") from exc


def set_record(data: dict[str, Any], version: str = ICONIFY.version) -> dict[str, Any]:
    """What icon_sets.json records of one set."""
    info = data.get("info", {})
    lic = info.get("license", {})
    author = info.get("author", {})
    return {
        "prefix": data["prefix"],
        "name": info.get("name", data["prefix"]),
        "licence": lic.get("spdx") or lic.get("title") or "unknown",
        "licence_title": lic.get("title", ""),
        # A few sets give no licence URL: the SPDX page of their licence then.
        "licence_url": lic.get("url") or (f"https://spdx.org/licenses/{lic['spdx']}.html" if lic.get("spdx") else ""),
        "author": author.get("name", ""),
        "url": author.get("url", ""),
        "version": info.get("version", ""),
        "package": ICONIFY.spec if version == ICONIFY.version else f"{ICONIFY.package}@{version}",
    }


def icon_names(data: dict[str, Any], role: Role) -> dict[str, str]:
    """{icon name: concept-side name} of the icons a role keeps (aliases without transforms included)."""
    pattern = re.compile(role.pattern)
    out: dict[str, str] = {}
    plain_aliases = {
        name: a["parent"]
        for name, a in data.get("aliases", {}).items()
        if set(a) <= {"parent"} and a.get("parent") in data["icons"]
    }
    for name in [*data["icons"], *plain_aliases]:
        m = pattern.fullmatch(name)
        if m:
            out[name] = m.group(1)
    return out


def icon_svg(data: dict[str, Any], name: str, stroke_scale: float = 1.0) -> str:
    """A standalone SVG of one icon (alias resolved, currentColor as black)."""
    alias = data.get("aliases", {}).get(name)
    if name not in data["icons"] and alias is not None:
        name = alias["parent"]
    icon = data["icons"].get(name)
    if icon is None:
        raise InputError(f"icon {data['prefix']}:{name} not in the set")
    left, top = icon.get("left", data.get("left", 0)), icon.get("top", data.get("top", 0))
    width = icon.get("width", data.get("width", 16))
    height = icon.get("height", data.get("height", 16))
    body = icon["body"].replace("currentColor", "#000000")
    if stroke_scale != 1.0:
        body = re.sub(
            r'stroke-width="([0-9.]+)"', lambda m: f'stroke-width="{float(m.group(1)) * stroke_scale:.3g}"', body
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'viewBox="{left} {top} {width} {height}" width="{width}" height="{height}">{body}</svg>'
    )


def check_roles(records: dict[str, dict[str, Any]]) -> None:
    """Every set given a role must be in the package and have an allowed licence."""
    bad = [p for p in ROLES if p not in records or not licence_allowed(records[p]["licence"])]
    if bad:
        raise ConfigError(f"icon sets {bad} have a role but their licence is not in {sorted(ALLOWED_LICENCES)}")


def icon_set_table(cache: Path) -> dict[str, Any]:
    """icon_sets.json: every set of the package with its licence, role (or why it is not used)."""
    collections = json.loads((iconify_root(cache) / "collections.json").read_text(encoding="utf-8"))
    kept, excluded, unused = [], [], []
    for prefix in sorted(collections):
        info = collections[prefix]
        spdx = info.get("license", {}).get("spdx") or "unknown"
        if not licence_allowed(spdx):
            excluded.append({"prefix": prefix, "licence": spdx})
        elif prefix in ROLES:
            kept.append(
                {
                    **set_record(load_set(str(cache), prefix)),
                    "role": ROLES[prefix].role,
                    "icons_used": ROLES[prefix].pattern,
                }
            )
        else:
            unused.append(prefix)
    check_roles({r["prefix"]: r for r in kept + excluded})
    return {
        "package": ICONIFY.spec,
        "licence_rule": "kept: " + ", ".join(sorted(ALLOWED_LICENCES)) + "; excluded: share-alike, copyleft "
        "(GPL, MPL), OFL, non-commercial, no-derivatives, unknown",
        "kept": kept,
        "excluded_by_licence": excluded,
        "allowed_but_not_used": unused,
    }
