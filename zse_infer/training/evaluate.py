"""Evaluate a ZSE model on the unseen demo concepts, in PyTorch: three rankings.

* ``ret_token`` ("sa"): L2 distance of L2-normalised token 0;
* ``two_stage``: the ret-token's top ``rerank_k`` (100) reordered by the
  relation score, the rest left in ret-token order behind them;
* ``exhaustive`` ("rn"): the relation score of every (sketch, photo) pair.

Protocols (which renders play gallery and queries). OpenMoji's colour emoji
and its black line art are the same drawing, so they never meet in one
protocol:

* ``icons`` (the headline): gallery = Twemoji + Noto + OpenMoji colour,
  queries = Tabler, Lucide and Phosphor icons (one stroke weight per icon);
* ``openmoji_black``: gallery = Twemoji + Noto, queries = OpenMoji black;
* ``bundle``: the gallery and queries bundled in ``zse_infer/assets/demo``
  (what ``zse-demo`` searches).

    python -m zse_infer.training.evaluate --checkpoint zse_infer/assets/demo/zse_demo.safetensors \\
        --out ~/.cache/zse-demo/metrics.json
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from ..config import ModelConfig, get_config
from ..demo.split import load_split
from ..evaluation.metrics import evaluate_ranking
from ..model import ZseModel, load_model
from ..runtime.searcher import exhaustive_distances, ret_token_distances, two_stage_distances
from .augment import to_tensor
from .data import RenderSet, load_renders

if TYPE_CHECKING:
    from ..demo.assets import DemoAssets

_log = logging.getLogger(__name__)

RERANK_K = 100
RANKINGS = ("ret_token", "two_stage", "exhaustive")
REPORTED = ("map_all", "map_200", "precision_10")


@dataclass(frozen=True)
class Protocol:
    name: str
    gallery_sources: tuple[str, ...]
    query_sources: tuple[str, ...]
    # One render per icon: the middle stroke width / weight.
    query_variants: tuple[str, ...] | None = None


PROTOCOLS = {
    p.name: p
    for p in (
        Protocol("icons", ("twemoji", "noto", "openmoji_color"), ("tabler", "lucide", "phosphor"), ("w1p25", "light")),
        Protocol("openmoji_black", ("twemoji", "noto"), ("openmoji_black",)),
    )
}


@torch.no_grad()
def encode(model: ZseModel, images: np.ndarray, modality: str, batch: int = 64) -> torch.Tensor:
    """(N, S, S, 3) uint8 -> (N, T, D) tokens, in eval mode."""
    pre = model.config.preprocess[modality]
    out = [model.encode(to_tensor(images[i : i + batch], pre)) for i in range(0, len(images), batch)]
    return torch.cat(out) if out else torch.zeros(0, model.config.num_tokens, model.config.width)


def ret_token_distance(sketch_tokens: torch.Tensor, photo_tokens: torch.Tensor) -> np.ndarray:
    """(Q, G) L2 distances of L2-normalised token 0 (the official "sa" ranking): the searcher's implementation."""
    return ret_token_distances(sketch_tokens[:, 0].numpy(), photo_tokens[:, 0].numpy())


@torch.no_grad()
def relation_scores(
    model: ZseModel, sketch_tokens: torch.Tensor, photo_tokens: torch.Tensor, pairs: np.ndarray, batch: int = 256
) -> np.ndarray:
    """Relation scores of the (query, gallery) index pairs ``pairs`` (P, 2)."""
    out = np.empty(len(pairs), dtype=np.float32)
    for i in tqdm(range(0, len(pairs), batch), desc="relation head", unit="batch", leave=False):
        q, g = pairs[i : i + batch, 0], pairs[i : i + batch, 1]
        out[i : i + batch] = model.relate(sketch_tokens[q], photo_tokens[g]).numpy()
    return out


def rank_three_ways(
    model: ZseModel, sketch_tokens: torch.Tensor, photo_tokens: torch.Tensor, rerank_k: int = RERANK_K
) -> dict[str, np.ndarray]:
    """Distance matrices (lower = better) for the three rankings."""
    ret = ret_token_distance(sketch_tokens, photo_tokens)
    n_q, n_g = ret.shape
    pairs = np.stack(np.meshgrid(np.arange(n_q), np.arange(n_g), indexing="ij"), -1).reshape(-1, 2)
    scores = relation_scores(model, sketch_tokens, photo_tokens, pairs).reshape(n_q, n_g)
    # The searcher's rankings, on scores computed here in torch (every pair, once).
    two = two_stage_distances(ret, rerank_k, lambda q, cols: scores[q, cols])
    exhaustive = exhaustive_distances(n_q, n_g, lambda q, cols: scores[q, cols])
    return {"ret_token": ret, "two_stage": two, "exhaustive": exhaustive}


def evaluate_arrays(
    model: ZseModel, gallery: np.ndarray, gallery_labels: np.ndarray, queries: np.ndarray, query_labels: np.ndarray
) -> dict[str, Any]:
    """Preprocessed uint8 images (N, S, S, 3) and labels -> {ranking: metrics} plus the sizes."""
    photo_tokens = encode(model, gallery, "photo")
    sketch_tokens = encode(model, queries, "sketch")
    out: dict[str, Any] = {"queries": len(queries), "gallery": len(gallery), "classes": len(set(gallery_labels))}
    for ranking, distance in rank_three_ways(model, sketch_tokens, photo_tokens).items():
        metrics = evaluate_ranking(distance, query_labels, gallery_labels, ks=(10,), ties="stable")
        out[ranking] = {k: float(v) for k, v in metrics.items()}
    return out


def evaluate_model(model: ZseModel, renders: RenderSet, concepts: list[str], protocol: Protocol) -> dict[str, Any]:
    """One protocol on the renders of ``concepts``: {ranking: {map_all, map_200, precision_10, ...}}."""
    names = set(concepts)
    g_mask = renders.mask(concepts=names, sources=protocol.gallery_sources, modality="photo")
    q_mask = renders.mask(concepts=names, sources=protocol.query_sources, modality="sketch", variants=protocol.query_variants)
    gallery, queries = renders.select(g_mask), renders.select(q_mask)
    return evaluate_arrays(model, gallery.images, gallery.concept, queries.images, queries.concept)


def evaluate_bundle(model: ZseModel, assets: "DemoAssets | None" = None) -> dict[str, Any]:
    """The three rankings on the bundled demo gallery and queries (what ``zse-demo`` should report)."""
    from ..demo.assets import load_demo_assets
    from ..preprocess import image_to_rgb

    assets = assets or load_demo_assets()

    def load(items, modality: str) -> tuple[np.ndarray, np.ndarray]:
        pre = model.config.preprocess[modality]
        return np.stack([image_to_rgb(i.path, pre) for i in items]), np.array([i.label for i in items])

    gallery, g_labels = load(assets.gallery, "photo")
    queries, q_labels = load(assets.queries, "sketch")
    return evaluate_arrays(model, gallery, g_labels, queries, q_labels)


def random_model(config: "str | ModelConfig", seed: int = 0) -> ZseModel:
    """The same architecture at its initialisation (the baseline a trained model must beat)."""
    torch.manual_seed(seed)
    return ZseModel(config).eval()


def write_results(path: "Path | None", results: dict[str, Any]) -> None:
    """The results as indented JSON at ``path`` (nothing when None)."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1) + "\n")


def summary_table(results: dict[str, dict[str, Any]]) -> str:
    """A Markdown table: one row per (model, protocol, ranking), the reported metrics as columns."""
    lines = ["| model | protocol | ranking | " + " | ".join(REPORTED) + " |", "|---" * (3 + len(REPORTED)) + "|"]
    for model_name, protocols in results.items():
        for protocol, res in protocols.items():
            for ranking in RANKINGS:
                vals = " | ".join(f"{res[ranking][m]:.3f}" for m in REPORTED)
                lines.append(f"| {model_name} | {protocol} | {ranking} | {vals} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=Path, default=Path.home() / ".cache" / "zse-demo" / "renders")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--config", default="zse_demo")
    parser.add_argument("--protocols", nargs="+", default=[*PROTOCOLS, "bundle"], choices=[*PROTOCOLS, "bundle"],
                        help="render protocols, and/or 'bundle' (the bundled demo gallery and queries)")
    parser.add_argument("--no-random", action="store_true", help="skip the random-weights baseline")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    config = get_config(args.config)
    renders = load_renders(args.renders, config)
    unseen = load_split()["unseen"]
    models = {"trained": load_model(args.checkpoint, config)}
    if not args.no_random:
        models["random_weights"] = random_model(config)
    def run(model: ZseModel, protocol: str) -> dict[str, Any]:
        if protocol == "bundle":
            return evaluate_bundle(model)
        return evaluate_model(model, renders, unseen, PROTOCOLS[protocol])

    results = {name: {p: run(model, p) for p in args.protocols} for name, model in models.items()}
    write_results(args.out, results)
    print(summary_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
