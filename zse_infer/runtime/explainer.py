"""The explainer: why a sketch matched a photo, and the sketch redrawn from photo patches (docs/explanations.md);
numpy and PIL only, so a deployed system explains its results from its export folder."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError, check_int
from ..manifest import HEAD_INPUTS, Manifest
from ..preprocess import ImageSource, image_to_rgb, source_path
from .explain_pictures import colormap, render_explanation, render_synthesis
from .synthesis import Synthesis, content_mask, ink_mask, patch_evidence, synthesize_patches

if TYPE_CHECKING:
    from .runners.base import Runner

__all__ = ["Explainer", "Explanation", "PatchMatch", "build_explanation"]
# re-exported: the synthesis and the pictures, from one module
__all__ += ["Synthesis", "colormap", "patch_evidence", "render_explanation", "render_synthesis", "synthesize_patches"]

#: matches drawn in an explanation picture unless the caller asks otherwise
DEFAULT_TOP = 6


@dataclass(frozen=True)
class PatchMatch:
    sketch_anchor: int
    photo_anchor: int
    similarity: float  # kernel[sketch_anchor, photo_anchor]
    sketch_patch: tuple[int, int]  # (row, col) on the token grid
    photo_patch: tuple[int, int]
    sketch_share: float  # that patch's term in the cosine
    photo_share: float

    @classmethod
    def placed(cls, a: int, b: int, similarity: float, s_rel, p_rel, sp: int, pp: int, grid: int) -> PatchMatch:
        """Anchor ``a``'s match with photo anchor ``b``, placed on sketch patch ``sp`` and photo patch ``pp``."""
        return cls(a, b, float(similarity), divmod(sp, grid), divmod(pp, grid), float(s_rel[sp]), float(p_rel[pp]))

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass
class Explanation:
    score: float
    kernel: np.ndarray  # (A, A)
    matches: list[PatchMatch]  # one per sketch anchor, strongest first, each on its top-contributing patches
    sketch_heat: np.ndarray  # (g, g), sums to 1
    photo_heat: np.ndarray  # (g, g), sums to 1
    sketch_relevance: np.ndarray = field(repr=False)  # (A, g*g)
    photo_relevance: np.ndarray = field(repr=False)
    sketch_image: np.ndarray | None = field(default=None, repr=False)  # uint8 (S, S, 3), as the encoder saw it
    photo_image: np.ndarray | None = field(default=None, repr=False)
    sketch_ink: np.ndarray | None = field(default=None, repr=False)  # (g*g,) bool: patches with strokes
    photo_content: np.ndarray | None = field(default=None, repr=False)  # (g*g,) bool: patches of the object
    image_path: str | None = None
    top: int = DEFAULT_TOP  # matches drawn
    captions: list[str] = field(default_factory=list, repr=False)  # the text written on the picture

    def readable_matches(self, top: int | None = None) -> list[PatchMatch]:
        """The ``top`` strongest matches a person can check: each placed on the stroke patch and the object patch that
        contribute most to its cosine (skipped when none contributes positively), and no patch marked twice."""
        top = self.top if top is None else top
        grid = self.sketch_heat.shape[0]
        n = grid * grid
        ink = self.sketch_ink if self.sketch_ink is not None else np.ones(n, bool)
        content = self.photo_content if self.photo_content is not None else np.ones(n, bool)
        used_s, used_p = set[int](), set[int]()
        shown: list[PatchMatch] = []
        for m in self.matches:
            if len(shown) >= top:
                break
            s_rel = np.where(ink, self.sketch_relevance[m.sketch_anchor], -np.inf)
            p_rel = np.where(content, self.photo_relevance[m.sketch_anchor], -np.inf)
            s_rel[list(used_s)] = -np.inf
            p_rel[list(used_p)] = -np.inf
            sp, pp = int(np.argmax(s_rel)), int(np.argmax(p_rel))
            if not (s_rel[sp] > 0 and p_rel[pp] > 0):
                continue
            used_s.add(sp)
            used_p.add(pp)
            shown.append(PatchMatch.placed(m.sketch_anchor, m.photo_anchor, m.similarity, s_rel, p_rel, sp, pp, grid))
        return shown

    def to_dict(self) -> dict:
        return {
            "score": self.score,
            "matches": [m.to_dict() for m in self.matches],
            "shown_matches": [m.to_dict() for m in self.readable_matches()],
            "kernel": self.kernel.tolist(),
            "sketch_heat": self.sketch_heat.tolist(),
            "photo_heat": self.photo_heat.tolist(),
            "image": self.image_path,
        }


def _heat(attention: np.ndarray, grid: int) -> np.ndarray:
    """(N, N) queries x keys -> (g, g) attention received per key patch (cls query and key dropped)."""
    received = attention[1:, 1:].mean(axis=0)
    total = received.sum()
    return (received / total if total > 0 else received).reshape(grid, grid)


def build_explanation(outputs: dict[str, np.ndarray], row: int = 0) -> Explanation:
    """One pair's :class:`Explanation` from the explain graph's outputs (row ``row`` of the batch)."""
    kernel = outputs["kernel"][row]
    best = outputs["best_photo_anchor"][row].astype(np.int64).tolist()
    s_rel, p_rel = outputs["sketch_relevance"][row], outputs["photo_relevance"][row]
    grid = round(np.sqrt(s_rel.shape[1]))
    sp, pp = s_rel.argmax(axis=1).tolist(), p_rel.argmax(axis=1).tolist()
    matches = [
        PatchMatch.placed(a, b, kernel[a, b], s_rel[a], p_rel[a], sp[a], pp[a], grid) for a, b in enumerate(best)
    ]
    matches.sort(key=lambda m: (-m.similarity, m.sketch_anchor))
    sketch_heat = _heat(outputs["photo_attention"][row], grid)  # what its patches receive from the other side
    photo_heat = _heat(outputs["sketch_attention"][row], grid)
    return Explanation(float(outputs["score"][row]), kernel, matches, sketch_heat, photo_heat, s_rel, p_rel)


def _is_hit(item: Any) -> bool:
    """A search hit (stored tokens by gallery row), told apart from an image without importing the facade."""
    return not isinstance(item, (str, bytes, os.PathLike, np.ndarray)) and all(
        hasattr(item, a) for a in ("id", "path", "row")
    )


@dataclass(eq=False)
class Explainer:
    """Explanations and synthesis from an export folder's explain graph. ``encode(images, modality)`` -> tokens
    (N, T, D); ``stored_tokens(rows)`` -> the gallery's tokens of those rows (N, T, D)."""

    export_dir: str | os.PathLike
    manifest: Manifest
    runners: Any
    encode: Callable[[Sequence[ImageSource], str], np.ndarray]
    stored_tokens: Callable[[Sequence[int]], np.ndarray]

    def __post_init__(self) -> None:
        self.export_dir = Path(self.export_dir)
        self._runner: Runner | None = None  # opened on the first explanation (they are occasional)

    def outputs(self, sketch_tokens: np.ndarray, photo_tokens: np.ndarray) -> dict[str, np.ndarray]:
        """The explain graph's outputs for pairs (B, T, D) x (B, T, D)."""
        if self._runner is None:
            from .runners.select import open_explain_runner

            self._runner = open_explain_runner(self.export_dir, self.manifest, self.runners)
        feeds = {
            HEAD_INPUTS[0]: np.ascontiguousarray(sketch_tokens, np.float32),
            HEAD_INPUTS[1]: np.ascontiguousarray(photo_tokens, np.float32),
        }
        return self._runner.run(feeds)

    def photo(self, item: Any) -> tuple[np.ndarray, np.ndarray, str]:
        """Tokens (T, D), the RGB image the encoder saw and a name, for a hit (stored tokens) or a photo."""
        config = self.manifest.preprocess["photo"]
        if _is_hit(item):
            if item.path is None:
                raise InputError(f"hit {item.id!r} has no path (indexed from memory): pass the photo image instead")
            return self.stored_tokens([item.row])[0], image_to_rgb(item.path, config), Path(str(item.id)).name
        name = source_path(item)
        return self.encode([item], "photo")[0], image_to_rgb(item, config), Path(name).name if name else "photo"

    def _sketch(self, sketch: ImageSource) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tokens, image and ink mask of the sketch."""
        config = self.manifest.preprocess["sketch"]
        tokens = self.encode([sketch], "sketch")[0]
        image = image_to_rgb(sketch, config)
        return tokens, image, ink_mask(image, self.manifest.model.encoder.grid_size, config.ink_threshold)

    def explain(
        self, sketch: ImageSource, hit_or_photo: Any, out: str | os.PathLike | None = None, top: int = DEFAULT_TOP
    ) -> Explanation:
        """Why ``sketch`` matched a photo (see ``Retriever.explain``)."""
        check_int(top, "top")
        sketch_tokens, sketch_image, ink = self._sketch(sketch)
        photo_tokens, photo_image, _ = self.photo(hit_or_photo)
        exp = build_explanation(self.outputs(sketch_tokens[None], photo_tokens[None]))
        exp.sketch_image, exp.photo_image, exp.top = sketch_image, photo_image, int(top)
        exp.sketch_ink, exp.photo_content = ink, content_mask(photo_image, self.manifest.model.encoder.grid_size)
        if out is not None:
            render_explanation(exp, out, top=top)
        return exp

    def synthesize(
        self, sketch: ImageSource, hits_or_photos: Any, out: str | os.PathLike | None = None, ink_only: bool = False
    ) -> Synthesis:
        """The sketch's drawing rebuilt from photo patches (see ``Retriever.synthesize``)."""
        if _is_hit(hits_or_photos) or isinstance(hits_or_photos, (str, os.PathLike, bytes, np.ndarray)):
            hits_or_photos = [hits_or_photos]
        if not len(hits_or_photos):
            raise InputError("hits_or_photos: received an empty list, expected at least one hit or photo")
        sketch_tokens, sketch_image, _ = self._sketch(sketch)
        photos = [self.photo(item) for item in hits_or_photos]
        photo_tokens = np.stack([t for t, _, _ in photos])
        attention = self.outputs(np.repeat(sketch_tokens[None], len(photos), axis=0), photo_tokens)["sketch_attention"]
        evidence = [patch_evidence(sketch_tokens, t, a) for t, a in zip(photo_tokens, attention, strict=True)]
        images = [image for _, image, _ in photos]
        ink_threshold = self.manifest.preprocess["sketch"].ink_threshold
        result = synthesize_patches(sketch_image, images, evidence, ink_threshold=ink_threshold, ink_only=ink_only)
        result.names = [name for _, _, name in photos]
        if out is not None:
            render_synthesis(result, sketch_image, images, out, names=result.names)
        return result
