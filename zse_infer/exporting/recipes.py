"""Export recipes: one JSON file per model variant (opset, precisions, batch profiles, tolerances) in the top-level
``export/`` folder, shipped in wheels as ``zse_infer.recipes``. No torch or onnx here: the CLI reads recipes first."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ManifestError, check_blend
from ..manifest import PRECISIONS, VARIANTS, BatchRange

ROLES = ("encoder", "relation_head")
_REPO_RECIPES = Path(__file__).resolve().parents[2] / "export"
_FIELDS = {"name", "description", "config", "opset", "precisions", "variants", "batch", "tolerances", "validation"}
_FIELDS |= {"tensorrt", "search"}


@dataclass(frozen=True)
class Recipe:
    name: str
    config: str
    opset: int
    precisions: tuple[str, ...]  # what this model may be exported in; fp32 always is
    variants: tuple[str, ...]
    batch: Mapping[str, BatchRange]
    tolerances: Mapping[str, Mapping[str, float]]  # precision -> output name -> max abs error
    validation_batch_sizes: tuple[int, ...] = (1, 5)
    validation_seed: int = 0
    tensorrt: Mapping[str, Any] = field(default_factory=dict)
    # Recommended stage 2, copied into the manifest: {"rerank": N, "blend": B (optional), "source": "how chosen"}.
    search: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "config": self.config,
            "opset": self.opset,
            "precisions": list(self.precisions),
            "variants": list(self.variants),
            "batch": {role: b.to_dict() for role, b in self.batch.items()},
            "tolerances": {p: dict(t) for p, t in self.tolerances.items()},
            "validation": {"batch_sizes": list(self.validation_batch_sizes), "seed": self.validation_seed},
            "tensorrt": dict(self.tensorrt),
            **({"search": dict(self.search)} if self.search else {}),
        }

    def with_max_batch(self, overrides: Mapping[str, int]) -> Recipe:
        """A copy with new maximum batch sizes per role (``opt`` clamped to the new maximum)."""
        batch = dict(self.batch)
        for role, maximum in overrides.items():
            if role not in ROLES:
                raise ConfigError(f"--max-batch: received role {role!r}, expected one of {ROLES}")
            if not isinstance(maximum, int) or maximum < 1:
                raise ConfigError(f"--max-batch {role}: received {maximum!r}, expected a positive integer")
            batch[role] = batch[role].with_max(maximum)
        return Recipe(**{**self.__dict__, "batch": batch})


def recipe_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Recipe:
    where = f"recipe {source}"
    if unknown := sorted(set(data) - _FIELDS):
        raise ConfigError(f"{where}: unknown field(s) {unknown}; expected some of {sorted(_FIELDS)}")
    try:
        precisions, variants = tuple(data["precisions"]), tuple(data["variants"])
        batch = {role: BatchRange(**data["batch"][role]) for role in ROLES}
        tolerances = {p: {k: float(v) for k, v in t.items()} for p, t in data["tolerances"].items()}
        validation = data.get("validation", {})
        recipe = Recipe(
            name=str(data["name"]),
            config=str(data["config"]),
            opset=int(data["opset"]),
            precisions=precisions,
            variants=variants,
            batch=batch,
            tolerances=tolerances,
            validation_batch_sizes=tuple(int(b) for b in validation.get("batch_sizes", (1, 5))),
            validation_seed=int(validation.get("seed", 0)),
            tensorrt=dict(data.get("tensorrt", {})),
            search=_search_block(data.get("search"), where),
            description=str(data.get("description", "")),
            source=source,
        )
    except KeyError as exc:
        raise ConfigError(f"{where}: missing field {exc}") from exc
    except (TypeError, ValueError, ManifestError) as exc:
        raise ConfigError(f"{where}: malformed ({exc})") from exc
    bad = [p for p in precisions if p not in PRECISIONS or p == "int8"]
    if "fp32" not in precisions or bad:
        raise ConfigError(f"{where}: precisions received {list(precisions)}, expected 'fp32' and optionally 'fp16'")
    if not variants or any(v not in VARIANTS for v in variants) or "plain" not in variants:
        raise ConfigError(f"{where}: variants received {list(variants)}, expected 'plain' plus any of {VARIANTS}")
    if missing_tol := [p for p in precisions if p not in tolerances]:
        raise ConfigError(f"{where}: no tolerances for precision(s) {missing_tol}")
    if not 17 <= recipe.opset <= 21:
        # LayerNormalization needs 17; TensorRT 10's ONNX parser and ORT 1.18+ both cover up to 21.
        raise ConfigError(f"{where}: opset received {recipe.opset}, expected 17..21")
    return recipe


def _search_block(block: Any, where: str) -> dict[str, Any]:
    """The optional ``search`` block (``blend``: :func:`zse_infer.runtime.searcher.blend_scores`; absent = 0)."""
    if block is None:
        return {}
    if not isinstance(block, Mapping) or not {"rerank", "source"} <= set(block) <= {"rerank", "blend", "source"}:
        expected = '{"rerank": N, "blend": B (optional), "source": "how"}'
        raise ConfigError(f"{where}: search received {block!r}, expected {expected}")
    rerank, source = block["rerank"], block["source"]
    if isinstance(rerank, bool) or not isinstance(rerank, int) or rerank < 0:
        raise ConfigError(f"{where}: search.rerank received {rerank!r}, expected an integer >= 0")
    if not isinstance(source, str) or not source.strip():
        expected = "a sentence saying how the depth was chosen"
        raise ConfigError(f"{where}: search.source received {source!r}, expected {expected}")
    out = {"rerank": rerank, "source": source}
    if "blend" in block:
        out["blend"] = check_blend(block["blend"], f"{where}: search.blend", ConfigError)
    return out


def recipe_dirs() -> list[Path | Any]:
    """Where recipe names are looked up, in order: the wheel's ``zse_infer.recipes``, then ``export/``."""
    dirs: list[Path | Any] = []
    with contextlib.suppress(ModuleNotFoundError):  # editable install: export/ is not mapped into the package
        dirs.append(resources.files("zse_infer.recipes"))
    if _REPO_RECIPES.is_dir():
        dirs.append(_REPO_RECIPES)
    return dirs


def list_recipes() -> list[str]:
    return sorted({p.name[: -len(".json")] for d in recipe_dirs() for p in d.iterdir() if p.name.endswith(".json")})


def load_recipe(name_or_path: str | os.PathLike) -> Recipe:
    """A :class:`Recipe` from a JSON file path or a recipe name (``"zse_vit_b16"``, ``"tiny"``)."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix == ".json" or os.sep in text or path.is_file():
        if not path.is_file():
            raise ConfigError(f"recipe file {path} not found")
        return _parse(path.read_text(), str(path))
    for d in recipe_dirs():
        if (candidate := d.joinpath(f"{text}.json")).is_file():
            return _parse(candidate.read_text(), str(candidate))
    raise ConfigError(f"unknown recipe {text!r}; known: {', '.join(list_recipes()) or 'none'} (or pass a .json path)")


def _parse(text: str, source: str) -> Recipe:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"recipe {source}: not valid JSON ({exc})") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"recipe {source}: expected a JSON object, received {type(data).__name__}")
    return recipe_from_dict(data, source)
