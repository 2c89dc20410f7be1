"""``zse-demo --out DIR``: the whole job on the bundled model, with no network.

1. export the bundled trained checkpoint (and, for comparison, the same
   architecture with random weights) to ONNX export folders;
2. index the bundled gallery (emoji of concepts the model never trained on);
3. search it with the bundled sketches (line icons of the same concepts) and
   evaluate three rankings: ret-token only, two-stage, exhaustive relation head;
4. write ``metrics.json``, a results page (``results.html`` and ``results.png``),
   an explanation image and a synthesized image.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from ..cli.common import setup_logging, verbose_option, zse_errors

_log = logging.getLogger(__name__)

RANKINGS = {"ret_token": ("sa", 0), "two_stage": ("two-stage", None), "exhaustive": ("rn", 0)}
METRICS = ("map_all", "map_200", "precision_10")


def _eval_set(assets):
    from ..evaluation.datasets import EvalSet

    classes = sorted({item.label for item in [*assets.gallery, *assets.queries]})
    index = {name: i for i, name in enumerate(classes)}
    return EvalSet(
        name="zse-demo unseen concepts",
        sketch_paths=tuple(q.path for q in assets.queries),
        sketch_labels=np.array([index[q.label] for q in assets.queries]),
        photo_paths=tuple(g.path for g in assets.gallery),
        photo_labels=np.array([index[g.label] for g in assets.gallery]),
        class_names=tuple(classes),
        description="bundled gallery (twemoji, noto) and sketches (tabler, lucide, phosphor, openmoji) of unseen concepts",
    )


def _random_checkpoint(config: str, path: Path, seed: int = 0) -> Path:
    import torch

    from ..model import ZseModel

    torch.manual_seed(seed)
    torch.save({"model": ZseModel(config).state_dict()}, path)
    return path


def _export(checkpoint: Path, out: Path, config: str, label: str) -> Path:
    from ..exporting import ExportOptions, export_model

    click.echo(f"exporting the {label} model to {out} ...", err=True)
    t0 = time.perf_counter()
    export_model(checkpoint, out, config=config, options=ExportOptions(overwrite=True, engines="never"))
    click.echo(f"  done in {time.perf_counter() - t0:.0f} s", err=True)
    return out


def _evaluate(export_dir: Path, gallery_dir: Path, eval_set, rerank: int, backend: str) -> tuple[dict, Any]:
    from ..evaluation.protocol import evaluate
    from ..runtime.retriever import Retriever

    r = Retriever.load(export_dir, gallery=gallery_dir, create=True, backend=backend)
    out = {}
    for i, (name, (ranking, _)) in enumerate(RANKINGS.items()):
        report = evaluate(r, eval_set, ranking=ranking, rerank=rerank, ks=(10,), index=(i == 0), progress=True)
        out[name] = {k: round(report["metrics"][k], 4) for k in METRICS}
    return out, r


@click.command()
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder for every output.")
@click.option("--rerank", type=click.IntRange(min=1), default=20, show_default=True, help="Two-stage: candidates reranked.")
@click.option("--backend", type=click.Choice(["auto", "onnxruntime", "onnxruntime-cpu", "tensorrt"]), default="auto", show_default=True)
@click.option("--skip-random", is_flag=True, help="Skip the random-weights comparison (halves the run time).")
@verbose_option
@zse_errors
def main(out: Path, rerank: int, backend: str, skip_random: bool, verbose: int) -> None:
    """Export the bundled model, index the bundled gallery, search it with the bundled sketches,
    print the metrics and write a results page and an explanation image to OUT."""
    from ..evaluation.results_page import QueryResult, write_results_grid, write_results_page
    from .assets import load_demo_assets

    setup_logging(verbose)
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("gallery", "gallery_random"):  # galleries of an earlier run may hold another model's tokens
        if (out / stale / "gallery.json").is_file() or (out / stale / "photos.lance").is_dir():
            shutil.rmtree(out / stale)
    assets = load_demo_assets()
    eval_set = _eval_set(assets)
    click.echo(eval_set.describe(), err=True)

    metrics = {}
    trained_export = _export(assets.checkpoint, out / "export", assets.config, "trained")
    metrics["trained"], retriever = _evaluate(trained_export, out / "gallery", eval_set, rerank, backend)
    if not skip_random:
        random_ckpt = _random_checkpoint(assets.config, out / "random_weights.pth")
        random_export = _export(random_ckpt, out / "export_random", assets.config, "random-weights")
        metrics["random_weights"], _ = _evaluate(random_export, out / "gallery_random", eval_set, rerank, backend)
    report = {
        **metrics,
        "settings": {"rerank": rerank, "backend": retriever.backend, "queries": eval_set.num_sketches, "gallery": eval_set.num_photos,
                     "classes": eval_set.num_classes, "unseen": True},
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")

    # A results page: one query per concept (up to 16), its top 8 hits, correct ones marked.
    labels = {str(g.path): g.label for g in assets.gallery}
    picked, seen = [], set()
    for q in assets.queries:
        if q.label not in seen:
            picked.append(q)
            seen.add(q.label)
    picked = picked[:16]
    hits = retriever.search_batch([str(q.path) for q in picked], k=8, rerank=rerank)
    results = [QueryResult(str(q.path), h, q.label) for q, h in zip(picked, hits)]
    write_results_page(out / "results.html", results, labels, title="zse-demo: unseen concepts, two-stage search")
    write_results_grid(out / "results.png", results, labels)
    # Explain a success where there is one: the first query whose top hit has its class.
    first = next((i for i, (q, h) in enumerate(zip(picked, hits)) if labels.get(h[0].id) == q.label), 0)
    query, top = picked[first], hits[first]
    exp = retriever.explain(str(query.path), top[0], out=out / "explanation.png")
    (out / "explanation.json").write_text(json.dumps({"query": str(query.path), "label": query.label, **exp.to_dict()}, indent=1) + "\n")
    retriever.synthesize(str(query.path), top[:3], out=out / "synthesis.png", ink_only=True)

    click.echo("")
    click.echo(f"{'model':<16} {'ranking':<11} " + " ".join(f"{m:>12}" for m in METRICS))
    for model, rows in metrics.items():
        for ranking, values in rows.items():
            click.echo(f"{model:<16} {ranking:<11} " + " ".join(f"{values[m]:>12.4f}" for m in METRICS))
    click.echo("")
    click.echo(f"wrote {out / 'metrics.json'}, {out / 'results.html'}, {out / 'results.png'}, {out / 'explanation.png'}, "
               f"{out / 'synthesis.png'} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":  # pragma: no cover
    main()
