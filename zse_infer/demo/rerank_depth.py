"""Choose the v1 demo model's stage-2 depth on SEEN concepts (development time only; needs the package cache).

For the first bundled model (v1 data); the current model's depth is chosen by
:func:`zse_infer.training.evaluate_pack.choose_depth` on the v2 validation split.

    python -m zse_infer.demo.rerank_depth --cache ~/.cache/zse-demo --out rerank_depth.json

The depth a recipe records (``export/zse_demo.json`` -> ``"search"``) must not
be tuned on the unseen concepts the demo reports on. The validation set here
is the seen concepts (those the model trained on) drawn by a source it never
trained on: queries are OpenMoji black line art (``train=False`` in
:mod:`zse_infer.demo.sources`), the gallery is the seen concepts' Twemoji and
Noto emoji. Every (query, photo) pair is scored once by the relation head;
two-stage at depth k reorders the ret-token top k by those scores, as
:func:`zse_infer.training.evaluate.rank_three_ways` does. The depth with the
highest mAP@all is chosen (ties: the smaller depth, which is also faster).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .concepts import load_concepts
from .fetch import DEFAULT_CACHE, fetch
from .build import RENDER_SIZE
from .render import drawings, rasterise
from .split import load_split

DEPTHS = (0, 10, 20, 50, 100, "all")
GALLERY_SOURCES = ("twemoji", "noto")
QUERY_SOURCES = ("openmoji_black",)
CHOOSE_ON = "map_all"


def _images(cache: Path, concepts, sources: tuple[str, ...], modality: str, config) -> tuple[np.ndarray, np.ndarray]:
    """Preprocessed uint8 images and concept labels of the drawings (kept in the cache: rendering is slow)."""
    from ..preprocess import photo_to_rgb, sketch_to_rgb

    kept = cache / f"rerank_depth_{'_'.join(sources)}_{config.encoder.image_size}.npz"
    if kept.is_file():
        with np.load(kept) as npz:
            return npz["images"], npz["labels"]
    to_rgb = sketch_to_rgb if modality == "sketch" else photo_to_rgb
    pre = config.preprocess[modality]
    images, labels = [], []
    for concept in tqdm(concepts, desc=f"rendering {'+'.join(sources)}", unit="concept"):
        for d in drawings(cache, concept, sources):
            images.append(to_rgb(io.BytesIO(rasterise(d.svg, RENDER_SIZE)), pre))
            labels.append(concept.name)
    np.savez(kept, images=np.stack(images), labels=np.array(labels))
    return np.stack(images), np.array(labels)


@torch.no_grad()
def _relation_scores(model, sketch_tokens, photo_tokens, candidates: np.ndarray) -> np.ndarray:
    """Relation scores of each query's ``candidates`` (Q, K) photos, with the per-image work done once
    (:class:`~zse_infer.model.fast_relation.FastRelationHead`: the official scores, restructured)."""
    from ..model.fast_relation import FastRelationHead, PhotoSide

    head = FastRelationHead(model.relation_head).eval()
    photos = head.prepare_photos(photo_tokens)
    scores = np.empty(candidates.shape, np.float32)
    for q in tqdm(range(len(sketch_tokens)), desc="relation scores", unit="query"):
        side = head.prepare_sketch(sketch_tokens[q : q + 1])
        rows = torch.from_numpy(candidates[q])
        scores[q] = head.score_prepared(side, PhotoSide(*(t[rows] for t in photos))).numpy()
    return scores


def measure(model, cache: Path, with_all: bool = True) -> dict[str, Any]:
    """mAP@all, mAP@200 and P@10 of two-stage search at every depth of :data:`DEPTHS`, on seen concepts."""
    from ..evaluation.metrics import evaluate_ranking
    from ..training.evaluate import encode, ret_token_distance

    seen = set(load_split()["seen"])
    concepts = [c for c in load_concepts() if c.name in seen]
    gallery, g_labels = _images(cache, concepts, GALLERY_SOURCES, "photo", model.config)
    queries, q_labels = _images(cache, concepts, QUERY_SOURCES, "sketch", model.config)
    photo_tokens, sketch_tokens = encode(model, gallery, "photo"), encode(model, queries, "sketch")
    ret = ret_token_distance(sketch_tokens, photo_tokens)
    n_q, n_g = ret.shape
    depths = [d for d in DEPTHS if with_all or d != "all"]
    deepest = n_g if "all" in depths else min(max(d for d in depths if d != "all"), n_g)
    top = np.argsort(ret, axis=1, kind="stable")[:, :deepest]  # only these pairs are ever reranked
    scores = _relation_scores(model, sketch_tokens, photo_tokens, top)
    rows = np.arange(n_q)[:, None]
    results = {}
    for depth in depths:
        k = n_g if depth == "all" else min(depth, n_g)
        distance = 1.0 + ret  # scores in (0, 1) put every reranked photo ahead of the rest
        distance[rows, top[:, :k]] = -scores[:, :k]
        metrics = evaluate_ranking(distance, q_labels, g_labels, ks=(10,), ties="stable")
        results[str(depth)] = {m: round(float(metrics[m]), 4) for m in ("map_all", "map_200", "precision_10")}
    numeric = [d for d in DEPTHS if d != "all"]
    best = max(numeric, key=lambda d: (results[str(d)][CHOOSE_ON], -d))
    return {
        "set": {
            "concepts": f"{len(concepts)} seen concepts of zse_infer/demo/split.json",
            "queries": f"{len(queries)} OpenMoji black line drawings (a source never used in training)",
            "gallery": f"{len(gallery)} Twemoji and Noto emoji",
        },
        "depths": results,
        "chosen": best,
        "chosen_on": CHOOSE_ON,
    }


def main(argv: list[str] | None = None) -> int:
    from ..model import load_model
    from .assets import load_demo_assets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-all", action="store_true", help="skip depth 'all' (every pair: about 4x the work)")
    parser.add_argument("--out", type=Path, default=None, help="write the measurements as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    cache = args.cache.expanduser()
    fetch(cache)
    assets = load_demo_assets()
    report = measure(load_model(assets.checkpoint, assets.config), cache, with_all=not args.no_all)
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
