"""The pinned npm packages the demo data is drawn from, with their licences.

One table, used by the fetcher (what to ``npm pack``), the renderer (which
folder holds which drawings) and the bundle writer (the licence and
attribution each bundled file carries). Versions are pinned so a rebuild
renders the same drawings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """One drawing set: where it comes from, which modality it plays, and its licence."""

    key: str  # short name used in file names, manifests and the split
    package: str  # npm package name
    version: str
    modality: str  # "photo" (colour emoji) or "sketch" (line art)
    licence: str  # SPDX identifier
    attribution: str
    # Evaluation only: never used to train the bundled weights (OpenMoji is
    # CC-BY-SA; keeping it out of training keeps the weights free of share-alike).
    train: bool = True

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"

    @property
    def tarball(self) -> str:
        """The file name ``npm pack`` writes: scope folded into the name, '/' dropped."""
        return self.package.lstrip("@").replace("/", "-") + f"-{self.version}.tgz"


# OpenMoji's colour emoji and black line art come from one package under one licence.
_OPENMOJI = ("openmoji", "17.0.0")
_OPENMOJI_TERMS = ("CC-BY-SA-4.0", "OpenMoji, the open-source emoji and icon project (openmoji.org), CC-BY-SA 4.0")

SOURCES: dict[str, Source] = {
    s.key: s
    for s in (
        Source("twemoji", "@twemoji/svg", "15.0.0", "photo", "CC-BY-4.0",
               "Twemoji graphics by Twitter, Inc. and other contributors (jdecked/twemoji), CC-BY 4.0"),
        Source("noto", "@svgmoji/noto", "3.2.0", "photo", "Apache-2.0",
               "Noto Emoji by Google Inc. (googlefonts/noto-emoji), Apache License 2.0; SVG sprite from @svgmoji/noto"),
        Source("openmoji_color", *_OPENMOJI, "photo", *_OPENMOJI_TERMS, train=False),
        Source("tabler", "@tabler/icons", "3.51.0", "sketch", "MIT",
               "Tabler Icons, Copyright (c) 2020-2026 Paweł Kuna (tabler.io/icons), MIT licence"),
        Source("lucide", "lucide-static", "1.62.0", "sketch", "ISC",
               "Lucide icons, Copyright (c) 2026 Lucide Icons and Contributors (lucide.dev), ISC licence; parts from Feather, Copyright (c) 2013-present Cole Bemis, MIT licence"),
        Source("phosphor", "@phosphor-icons/core", "2.1.1", "sketch", "MIT",
               "Phosphor Icons, Copyright (c) 2023 Phosphor Icons (phosphoricons.com), MIT licence"),
        Source("openmoji_black", *_OPENMOJI, "sketch", *_OPENMOJI_TERMS, train=False),
    )
}

PHOTO_SOURCES = tuple(k for k, s in SOURCES.items() if s.modality == "photo")
SKETCH_SOURCES = tuple(k for k, s in SOURCES.items() if s.modality == "sketch")
# Icon sets named in concepts.json's "icons" field.
ICON_SETS = ("tabler", "lucide", "phosphor")


def packages() -> list[Source]:
    """One entry per npm package (OpenMoji's two roles share one tarball)."""
    seen: dict[str, Source] = {}
    for source in SOURCES.values():
        seen.setdefault(source.spec, source)
    return list(seen.values())
