"""Evaluate a ZSE model on the data pack, in PyTorch: the ret-token, the two-stage rerank at
several depths, and the exhaustive relation ranking.

Protocols (rows of the pack, :mod:`tools.pack`):

* ``validation``: held-out drawings of *seen* concepts (split code 1) against the photos of
  the seen concepts. The relation head and the rerank depth are chosen here, never on test.
* ``test``: drawings of *unseen* concepts (split code 2) against the photos of the unseen
  concepts: the numbers ``tools/README.md`` reports.
* ``bundle``: the gallery and queries bundled in ``zse_infer/assets/demo`` (a sample of the
  unseen concepts: what ``zse-demo`` searches), every query, exhaustive included.

One query per drawing icon (its middle stroke width), a seeded sample of at most
``max_queries``. A query never meets a photo of its own artwork ``family`` (a black-and-white
emoji and the colour emoji it was traced from): its gallery is the protocol's photos minus
that family, so each query family is ranked on its own gallery and the per-query metrics are
pooled. The relation head costs about 160 pairs a second on one core of our CPUs, so the
reranks score only each query's top ``max(depths)`` pairs, and the exhaustive ranking (every
pair) runs on the first ``exhaustive_queries`` of the sample, reported beside the ret-token
on that same subset.

    python -m tools.evaluate --pack ~/.cache/zse-demo/v2_112.npz \\
        --checkpoint ~/.cache/zse-demo/v2run/zse_demo_head.safetensors --out ~/.cache/zse-demo/v2run/metrics.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from zse_infer.config import ModelConfig, get_config
from zse_infer.errors import InputError
from zse_infer.evaluation.metrics import RankingMetrics
from zse_infer.model import ZseModel, load_model
from zse_infer.runtime.searcher import exhaustive_distances, ret_token_distances, two_stage_distances

from .augment import to_tensor
from .pack import RenderSet

_log = logging.getLogger(__name__)

# protocol: (queries: icon or freehand drawings, their split code, the split code of the photos ranked).
# Icon protocols rank every photo of their side; freehand ones the photos of the concepts drawn.
PROTOCOLS = {
    "validation": ("icon", 1, 0),
    "test": ("icon", 2, 2),
    "freehand_validation": ("freehand", 1, 0),
    "freehand_test": ("freehand", 2, 2),
}
CHANCE_TRIALS = 20
DEPTHS = (10, 20, 50, 100)
BLENDS = (0.0,)  # shares of the ret-token cosine in a reranked score (zse_infer.runtime.searcher.blend_scores)
REPORTED = ("map_all", "precision_10")
QUERY_VARIANTS = ("", "s0.75")  # one render per icon: unstroked sets, or the middle stroke width


@torch.no_grad()
def encode(model: ZseModel, images: np.ndarray, modality: str, batch: int = 64) -> torch.Tensor:
    """(N, S, S, 3) uint8 -> (N, T, D) tokens, in eval mode."""
    pre = model.config.preprocess[modality]
    out = [model.encode(to_tensor(images[i : i + batch], pre)) for i in range(0, len(images), batch)]
    return torch.cat(out) if out else torch.zeros(0, model.config.num_tokens, model.config.width)


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


def random_model(config: str | ModelConfig, seed: int = 0) -> ZseModel:
    """The same architecture at its initialisation (the baseline a trained model must beat)."""
    torch.manual_seed(seed)
    return ZseModel(config).eval()


def write_results(path: Path | None, results: dict[str, Any]) -> None:
    """The results as indented JSON at ``path`` (nothing when None)."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1) + "\n")


def protocol_rows(renders: RenderSet, codes: np.ndarray, protocol: str, max_queries: int, seed: int = 0):
    """(query rows, gallery rows) of ``protocol`` (:data:`PROTOCOLS`); queries a seeded sample in a
    fixed order. Freehand rows are those of source :data:`tools.quickdraw.FAMILY`."""
    from .quickdraw import FAMILY

    if protocol not in PROTOCOLS:
        raise InputError(f"protocol {protocol!r}: expected one of {sorted(PROTOCOLS)}")
    kind, code, gallery_code = PROTOCOLS[protocol]
    sketch = renders.modality == "sketch"
    freehand = renders.source == FAMILY
    if kind == "icon":
        queries = np.flatnonzero(sketch & ~freehand & (codes == code) & np.isin(renders.variant, QUERY_VARIANTS))
    else:
        queries = np.flatnonzero(freehand & (codes == code))
    # Validation ranks the seen concepts' photos (split code 0: photos are never held out).
    photos = ~sketch & (codes == gallery_code)
    if kind == "freehand":
        photos &= np.isin(renders.concept, np.unique(renders.concept[queries]))
    gallery = np.flatnonzero(photos)
    if len(queries) == 0 or len(gallery) == 0:
        raise InputError(f"the data has no {protocol} queries or photos (split code {code})")
    queries = np.random.default_rng(seed).permutation(queries)[:max_queries]
    return queries, gallery


def bundle_rows(config) -> tuple[RenderSet, np.ndarray, np.ndarray, np.ndarray]:
    """The bundled demo as (renders, family, query rows, gallery rows), preprocessed for ``config``."""
    from zse_infer.demo.assets import load_demo_assets
    from zse_infer.preprocess import image_to_rgb

    from .iconify import family

    assets = load_demo_assets()
    items = [(i, "photo") for i in assets.gallery] + [(i, "sketch") for i in assets.queries]
    renders = RenderSet(
        images=np.stack([image_to_rgb(i.path, config.preprocess[m]) for i, m in items]),
        concept=np.array([i.label for i, _ in items]),
        source=np.array([i.source for i, _ in items]),
        modality=np.array([m for _, m in items]),
        variant=np.array([i.record.get("variant", "") for i, _ in items]),
        ident=np.array([i.record.get("id", "") for i, _ in items]),
        path=np.array([str(i.path) for i, _ in items]),
    )
    families = np.array([family(str(s)) for s in renders.source])
    n_gallery = len(assets.gallery)
    return renders, families, np.arange(n_gallery, len(items)), np.arange(n_gallery)


def _pool(parts: list[dict[str, np.ndarray]]) -> dict[str, float]:
    per_query = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    valid = ~np.isnan(per_query["map_all"])
    return {k: float(v[valid].mean()) if valid.any() else float("nan") for k, v in per_query.items()}


@torch.no_grad()
def evaluate_protocol(
    model: ZseModel,
    renders: RenderSet,
    family: np.ndarray,
    queries: np.ndarray,
    gallery: np.ndarray,
    depths: tuple[int, ...] = DEPTHS,
    exhaustive_queries: int = 0,
    chance_seed: int = 0,
    blends: tuple[float, ...] = BLENDS,
) -> dict[str, Any]:
    """{ranking: metrics} for the query and gallery rows, each query family on its own gallery; and
    ``chance``: the metrics of a random ranking (the mean of :data:`CHANCE_TRIALS` seeded ones)."""
    rng = np.random.default_rng(chance_seed)
    q_tok = encode(model, renders.images[queries], "sketch")
    g_tok = encode(model, renders.images[gallery], "photo")
    top = max(depths) if depths else 0
    parts: dict[str, list[dict[str, np.ndarray]]] = {}
    exhaustive_subset = np.zeros(len(queries), dtype=bool)
    exhaustive_subset[:exhaustive_queries] = True
    for fam in np.unique(family[queries]):
        q_sel = np.flatnonzero(family[queries] == fam)
        g_sel = np.flatnonzero(family[gallery] != fam)
        q_labels, g_labels = renders.concept[queries[q_sel]], renders.concept[gallery[g_sel]]
        qt, gt = q_tok[q_sel], g_tok[g_sel]
        ret = ret_token_distances(qt[:, 0].numpy(), gt[:, 0].numpy())
        rankings = {"ret_token": ret}
        if top:
            cand = np.argsort(ret, axis=1, kind="stable")[:, :top]  # what any depth <= top reranks
            pairs = np.stack([np.repeat(np.arange(len(q_sel)), cand.shape[1]), cand.ravel()], 1)
            scores = np.full(ret.shape, np.nan, dtype=np.float32)
            scores[pairs[:, 0], pairs[:, 1]] = relation_scores(model, qt, gt, pairs)
            for k in depths:
                for b in blends:
                    rankings[rerank_name(k, b)] = two_stage_distances(
                        ret, k, lambda q, cols, scores=scores: scores[q, cols], b
                    )
        sub = np.flatnonzero(exhaustive_subset[q_sel])
        if len(sub):
            pairs = np.stack(np.meshgrid(sub, np.arange(len(g_sel)), indexing="ij"), -1).reshape(-1, 2)
            full = relation_scores(model, qt, gt, pairs).reshape(len(sub), len(g_sel))
            exhaustive = exhaustive_distances(len(sub), len(g_sel), lambda q, cols, full=full: full[q, cols])
            for name, dist in (("exhaustive", exhaustive), ("ret_token_on_exhaustive_queries", ret[sub])):
                metrics = RankingMetrics(g_labels, ks=(10,), ties="stable")
                metrics.update(dist, q_labels[sub])
                parts.setdefault(name, []).append(metrics.per_query())
        for name, dist in rankings.items():
            metrics = RankingMetrics(g_labels, ks=(10,), ties="stable")
            metrics.update(dist, q_labels)
            parts.setdefault(name, []).append(metrics.per_query())
        trials = []
        for _ in range(CHANCE_TRIALS):
            metrics = RankingMetrics(g_labels, ks=(10,), ties="stable")
            metrics.update(rng.random(ret.shape), q_labels)
            trials.append(metrics.per_query())
        parts.setdefault("chance", []).append({k: np.mean([t[k] for t in trials], axis=0) for k in trials[0]})
    out: dict[str, Any] = {
        "queries": len(queries),
        "gallery": len(gallery),
        "classes": len(np.unique(renders.concept[gallery])),
        "exhaustive_queries": int(min(exhaustive_queries, len(queries))),
    }
    out.update({name: _pool(p) for name, p in parts.items()})
    return out


def rerank_name(depth: int, blend: float) -> str:
    """The results' key of a two-stage ranking: ``rerank_20``, or ``rerank_20_blend_0.9`` with a blend."""
    return f"rerank_{depth}" + (f"_blend_{blend:g}" if blend else "")


def choose_search(*validations: dict[str, Any]) -> tuple[int, float, str]:
    """The rerank depth (0 = ret-token alone) and blend with the best validation mAP@all (the mean over
    the validation protocols given: icons, and freehand drawings when measured), and why."""

    def score(ranking: str) -> float:
        return float(np.mean([v[ranking]["map_all"] for v in validations]))

    options = {(0, 0.0): score("ret_token")}
    for key in validations[0]:
        if key.startswith("rerank_"):
            parts = key.split("_")
            options[(int(parts[1]), float(parts[3]) if len(parts) > 2 else 0.0)] = score(key)
    best = max(options, key=lambda o: (options[o], -o[0], -o[1]))  # ties: the cheaper depth, the smaller blend
    listed = ", ".join(f"{k}" + (f" blend {b:g}" if b else "") + f": {v:.3f}" for (k, b), v in sorted(options.items()))
    what = "validation mAP@all" if len(validations) == 1 else f"mean mAP@all of {len(validations)} validation protocols"
    at = f"depth {best[0]}" + (f" blend {best[1]:g}" if best[1] else "")
    return best[0], best[1], f"best {what} at {at} ({listed})"


def table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown: one row per (model, protocol, ranking)."""
    lines = ["| model | protocol | ranking | " + " | ".join(REPORTED) + " |", "|---" * (3 + len(REPORTED)) + "|"]
    for model_name, protocols in results.items():
        for protocol, res in protocols.items():
            if not isinstance(res, dict):  # chosen_depth, chosen_because
                continue
            for ranking, metrics in res.items():
                if isinstance(metrics, dict):
                    vals = " | ".join(f"{metrics[m]:.3f}" for m in REPORTED)
                    lines.append(f"| {model_name} | {protocol} | {ranking} | {vals} |")
    return "\n".join(lines)


def pack_families(path: str | Path) -> np.ndarray:
    """The ``family`` column of a pack (which artwork family each image belongs to)."""
    with np.load(Path(path).expanduser()) as npz:
        return npz["family"].copy()


def evaluation_data(pack: Path, config, freehand: bool) -> tuple[RenderSet, np.ndarray, np.ndarray]:
    """(renders, split codes, families) of the pack, and with ``freehand`` the Quick, Draw!
    drawings of the mapped concepts after them (:func:`tools.quickdraw.freehand_set`)."""
    from .pack import load_pack

    renders, codes = load_pack(pack)
    family = pack_families(pack)
    if freehand:
        from .quickdraw import FAMILY, freehand_set

        drawn, drawn_codes, _ = freehand_set(config)
        renders, codes = renders.concat(drawn), np.concatenate([codes, drawn_codes])
        family = np.concatenate([family, np.full(len(drawn), FAMILY)])
    return renders, codes, family


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, nargs="+", required=True, help="one or more checkpoints to compare")
    parser.add_argument("--config", default="zse_demo")
    parser.add_argument(
        "--protocols",
        nargs="+",
        default=[*PROTOCOLS, "bundle"],
        choices=[*PROTOCOLS, "bundle"],
        help="freehand_*: Quick, Draw! drawings from the shared folder beside the checkout",
    )
    parser.add_argument("--max-queries", type=int, default=400)
    parser.add_argument("--exhaustive-queries", type=int, default=40)
    parser.add_argument(
        "--depths", type=int, nargs="*", default=list(DEPTHS), help="rerank depths (none: ret-token only)"
    )
    parser.add_argument(
        "--blends",
        type=float,
        nargs="+",
        default=list(BLENDS),
        help="shares of the ret-token cosine in reranked scores to measure (0: the relation score alone)",
    )
    parser.add_argument("--no-random", action="store_true", help="skip the random-weights baseline")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    config = get_config(args.config)
    # Each protocol's images and rows, read once for every model.
    setups: dict[str, tuple[RenderSet, np.ndarray, np.ndarray, np.ndarray, int]] = {}
    if set(args.protocols) - {"bundle"}:
        freehand = any(PROTOCOLS[p][0] == "freehand" for p in set(args.protocols) - {"bundle"})
        renders, codes, family = evaluation_data(args.pack, config, freehand)
        for protocol in set(args.protocols) - {"bundle"}:
            q, g = protocol_rows(renders, codes, protocol, args.max_queries)
            setups[protocol] = (renders, family, q, g, args.exhaustive_queries)
    if "bundle" in args.protocols:
        b_renders, b_family, q, g = bundle_rows(config)
        setups["bundle"] = (b_renders, b_family, q, g, len(q))  # small: every query exhaustive too
    models = {str(c): load_model(c, config) for c in args.checkpoint}
    if not args.no_random:
        models["random_weights"] = random_model(config)
    results: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        results[name] = {}
        for protocol in args.protocols:
            p_renders, p_family, q, g, exhaustive = setups[protocol]
            results[name][protocol] = evaluate_protocol(
                model, p_renders, p_family, q, g, tuple(args.depths), exhaustive, blends=tuple(args.blends)
            )
            _log.info("%s %s: %s", name, protocol, json.dumps(results[name][protocol]))
        validations = [results[name][p] for p in ("validation", "freehand_validation") if p in results[name]]
        if validations:
            chosen = choose_search(*validations)
            results[name]["chosen_depth"], results[name]["chosen_blend"], results[name]["chosen_because"] = chosen
    write_results(args.out, results)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
