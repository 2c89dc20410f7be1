"""``zse-demo --out DIR``: the whole job on the bundled model, with no network (its steps: docs/demo.md)."""

from __future__ import annotations

import importlib.util
import json
import resource
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import numpy as np

from ..cli.common import StepBar, ZseCommand, rerank_note, rerank_source
from ..errors import InputError

#: the rankings compared, by the names zse eval, its progress bars and metrics.json use
RANKINGS = ("ret-token", "two-stage", "exhaustive")
METRICS = ("map_all", "map_200", "precision_10")
#: backends the demo runs on, and where its graphs come from (--graphs)
BACKENDS = ["auto", "onnxruntime", "onnxruntime-cpu", "tensorrt"]
GRAPHS = ["auto", "export", "shipped"]
#: what exporting needs (the ``export`` extra); without it the demo runs the shipped graphs
EXPORT_MODULES = ("torch", "timm", "onnx", "onnxscript", "safetensors")
#: --help texts too long to sit on their option's line
_HELP = {
    "rerank": "Two-stage: candidates reranked (default: the depth the export records, printed).",
    "graphs": "export: export the bundled weights now (needs torch); shipped: copy the ONNX graphs shipped "
    "with the package (made from the same weights); auto: export when torch is installed.",
    "skip-random": "Skip the random-weights comparison (about half the run time; skipped anyway without torch).",
    "serve": "Then serve the demo gallery in the sketch pad page (http://127.0.0.1:8000/).",
}


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (user + system), all threads."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Clock:
    """Numbered steps ("[n/total]", counted as they start: a skipped step leaves no gap), their seconds echoed."""

    def __init__(self, total: int):
        self.wall0, self.cpu0 = time.perf_counter(), cpu_seconds()
        self.total_steps, self.started = total, 0
        self.steps: dict[str, dict[str, float]] = {}
        self._mark = (self.wall0, self.cpu0)

    def start(self, text: str) -> None:
        self.started += 1
        click.echo(f"[{self.started}/{self.total_steps}] {text}", err=True)
        self._mark = (time.perf_counter(), cpu_seconds())

    def done(self, key: str) -> None:
        wall, cpu = time.perf_counter() - self._mark[0], cpu_seconds() - self._mark[1]
        self.steps[key] = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}
        click.echo(f"      done in {wall:.0f} s ({cpu:.0f} CPU s)", err=True)

    def total(self) -> dict[str, float]:
        return {"wall_s": round(time.perf_counter() - self.wall0, 1), "cpu_s": round(cpu_seconds() - self.cpu0, 1)}


def choose_graphs(graphs: str, backend: str, exportable: bool) -> str:
    """``"export"`` or ``"shipped"`` for ``--graphs``: auto exports when torch is there (the demo then shows the
    whole product, export included; TensorRT engines are built from it) and runs the shipped graphs otherwise."""
    if graphs == "auto":
        graphs = "export" if exportable or backend == "tensorrt" else "shipped"
    if graphs == "export" and not exportable:
        needed = " (needed by --backend tensorrt)" if backend == "tensorrt" else ""
        missing = ", ".join(name for name in EXPORT_MODULES if importlib.util.find_spec(name) is None)
        hint = "(pip install 'zse-infer[export]'); --graphs shipped runs the graphs shipped with the package"
        raise InputError(f"--graphs export{needed}: exporting needs {missing} {hint}")
    if graphs == "shipped" and backend == "tensorrt":
        raise InputError(
            "--graphs shipped with --backend tensorrt: TensorRT engines are built from an export "
            "made on the spot; use --graphs export (needs torch) or another backend"
        )
    return graphs


def _copy_shipped(assets, out: Path) -> Path:
    """The shipped export folder copied to ``out`` (the run's outputs stay together, for ``zse`` to use later)."""
    source = assets.check_shipped_export()
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(source, out)
    # The copy names the installed weights (the shipped manifest: relative to the assets), for zse's PyTorch backend.
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["source_checkpoint"]["path"] = str(assets.checkpoint)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return out


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
        description=f"bundled photos ({len({g.source for g in assets.gallery})} colour icon sets) and sketches "
        f"({len({q.source for q in assets.queries})} line icon sets) of unseen concepts",
    )


def demo_recipe(config: str, tensorrt: bool = False):
    """The model's recipe cut to fp32 plain graphs (and, for ``tensorrt``, the TensorRT-shaped ones its engines are
    built from) validated at batch 2 (still a dynamic batch: pairs of different images); search depth unchanged."""
    from ..exporting.recipes import load_recipe

    recipe = load_recipe(config)
    return replace(
        recipe,
        variants=("plain", "trt") if tensorrt else ("plain",),
        validation_batch_sizes=(2,),
        description=recipe.description + " zse-demo export: fp32 plain graphs only, validated at batch 2.",
    )


def _export(checkpoint: Path, out: Path, config: str, backend: str = "auto") -> Path:
    """Export with :func:`demo_recipe` under one progress bar; with engines (required) for ``--backend tensorrt``."""
    from ..exporting import ExportOptions, export_model
    from ..exporting.pipeline import export_steps

    tensorrt = backend == "tensorrt"
    recipe = demo_recipe(config, tensorrt=tensorrt)
    options = ExportOptions(overwrite=True, engines="require" if tensorrt else "never", lint="never")
    with StepBar(len(export_steps(recipe, ("fp32",))), "exporting") as steps:
        export_model(checkpoint, out, config=config, recipe=recipe, options=options, on_step=steps)
    return out


def _evaluate(retriever, eval_set, rerank: int, index: bool = True) -> dict[str, Any]:
    """The three rankings' metrics (photos indexed first when ``index``)."""
    from ..evaluation.protocol import evaluate

    out = {}
    for i, ranking in enumerate(RANKINGS):
        report = evaluate(
            retriever, eval_set, ranking=ranking, rerank=rerank, ks=(10,), index=index and i == 0, progress=True
        )
        out[ranking] = {k: round(report["metrics"][k], 4) for k in METRICS}
    return out


def _first_results(retriever, assets, out: Path, rerank: int) -> dict[str, str]:
    """Search with one sketch per concept (up to 16): the results page and PNG, an explanation, a synthesis."""
    from ..evaluation.results_page import QueryResult, write_results_grid, write_results_page

    labels = {str(g.path): g.label for g in assets.gallery}
    by_label: dict[str, Any] = {}
    for q in assets.queries:
        by_label.setdefault(q.label, q)
    picked = list(by_label.values())[:16]
    hits = retriever.search_batch([str(q.path) for q in picked], k=8, rerank=rerank)
    results = [QueryResult(str(q.path), h, q.label) for q, h in zip(picked, hits, strict=False)]
    title = "zse-demo: sketches of unseen concepts, two-stage search"
    blend = retriever.manifest.default_blend
    subtitle = (
        f"{len(picked)} line-icon sketches, one per concept, each searching {len(retriever)} photos (colour emoji "
        f"and icons) of concepts the model never trained on; top 8 hits after reranking the ret-token top {rerank} "
        "with the relation head" + (f" (its score blended with the ret-token cosine, {blend:g})." if blend else ".")
    )
    write_results_page(out / "results.html", results, labels, title=title, subtitle=subtitle)
    write_results_grid(out / "results.png", results, labels, title=title, subtitle=subtitle)
    # Explain a success where there is one: the first query whose top hit has its class.
    first = next((i for i, (q, h) in enumerate(zip(picked, hits, strict=False)) if labels.get(h[0].id) == q.label), 0)
    query, top = picked[first], hits[first]
    exp = retriever.explain(str(query.path), top[0], out=out / "explanation.png")
    record = {"query": str(query.path), "label": query.label, **exp.to_dict()}
    (out / "explanation.json").write_text(json.dumps(record, indent=1) + "\n")
    # From the matched photo alone, strokes and what they enclose: the sketch redrawn with that photo's content.
    # (Given the top 3, each part of the drawing may take another photo whose layout fits it better: a collage.)
    retriever.synthesize(str(query.path), top[:1], out=out / "synthesis.png")
    correct = sum(labels.get(h.id) == q.label for q, row in zip(picked, hits, strict=False) for h in row)
    summary = f"{correct} of {8 * len(picked)} hits have the query's class; explained and synthesized: {query.label}"
    click.echo(f"      {summary}", err=True)
    return {"explained_query": str(query.path), "explained_label": query.label}


@click.command("zse-demo", cls=ZseCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder for every output.")
@click.option("--rerank", type=click.IntRange(min=1), help=_HELP["rerank"])
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True)
@click.option("--graphs", type=click.Choice(GRAPHS), default="auto", show_default=True, help=_HELP["graphs"])
@click.option("--skip-random", is_flag=True, help=_HELP["skip-random"])
@click.option("--serve", "serve_after", is_flag=True, help=_HELP["serve"])
def main(out: Path, rerank: int | None, backend: str, graphs: str, skip_random: bool, serve_after: bool) -> None:
    """Export the bundled model (or copy its shipped graphs), index the bundled gallery, search it with
    the bundled sketches, write a results page, an explanation and a synthesis, then evaluate the
    trained model against random weights, all in OUT."""
    from ..runtime.retriever import Retriever
    from .assets import load_demo_assets

    exportable = all(importlib.util.find_spec(name) is not None for name in EXPORT_MODULES)  # the torch side
    graphs = choose_graphs(graphs, backend, exportable)
    random_skipped = None
    if not skip_random and not exportable:
        skip_random = True
        random_skipped = "it exports a randomly initialised model, which needs torch (pip install 'zse-infer[export]')"
        click.echo(f"the random-weights comparison is skipped: {random_skipped}", err=True)
    clock = Clock(total=4 if skip_random else 5)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("gallery", "gallery_random", "export_random"):  # an earlier run's: another model's tokens
        if (out / stale).is_dir():
            shutil.rmtree(out / stale)
    assets = load_demo_assets()
    eval_set = _eval_set(assets)
    click.echo(eval_set.describe(), err=True)
    if graphs == "export":
        clock.start(f"exporting the trained model to {out / 'export'} (fp32 graphs the demo runs; torch found)")
        export = _export(assets.checkpoint, out / "export", assets.config, backend)
    else:
        why = "torch is not installed" if not exportable else "--graphs shipped"
        clock.start(
            f"copying the trained model's shipped ONNX graphs to {out / 'export'} ({why}; "
            "the same graphs zse-export makes from the bundled weights)"
        )
        export = _copy_shipped(assets, out / "export")
    clock.done("export")
    clock.start(f"indexing {eval_set.num_photos} gallery photos into {out / 'gallery'}")
    retriever = Retriever.load(export, gallery=out / "gallery", create=True, backend=backend, projections=True)
    click.echo(f"      {rerank_note(retriever.manifest, rerank)}", err=True)
    rerank = retriever.manifest.default_rerank if rerank is None else rerank
    retriever.index([str(p) for p in eval_set.photo_paths], ids=[str(p) for p in eval_set.photo_paths], progress=True)
    clock.done("index")
    clock.start("searching, one sketch per concept: results page, explanation, synthesis")
    shown = _first_results(retriever, assets, out, rerank)
    clock.done("first_results")
    pictures = f"{out / 'results.html'} (and .png), {out / 'explanation.png'}, {out / 'synthesis.png'}"
    click.echo(f"      first results: {pictures}", err=True)
    clock.start(f"evaluating the trained model: {len(RANKINGS)} rankings x {eval_set.num_sketches} sketches")
    metrics: dict[str, Any] = {"trained": _evaluate(retriever, eval_set, rerank, index=False)}  # indexed in step 2
    clock.done("evaluate_trained")
    if not skip_random:
        clock.start("the same architecture with random weights: export (temporary folder) and evaluation")
        import torch

        from ..model import ZseModel

        with tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(0)  # the architecture at its seeded initialisation
            weights = Path(tmp) / "random_weights.pth"
            torch.save({"model": ZseModel(assets.config).state_dict()}, weights)
            random_export = _export(weights, Path(tmp) / "export", assets.config, backend)
            # In memory: nothing of the random model is left in OUT.
            random = Retriever.load(random_export, gallery=None, backend=backend, projections=True)
            metrics["random_weights"] = _evaluate(random, eval_set, rerank)
            random.close()
        clock.done("random_weights")
    seconds = {**clock.total(), "steps": clock.steps}
    report = {
        **metrics,
        "settings": {
            "rerank": rerank,
            "rerank_source": rerank_source(retriever.manifest),
            "backend": retriever.backend,
            "queries": eval_set.num_sketches,
            "gallery": eval_set.num_photos,
            "classes": eval_set.num_classes,
            "unseen": True,
            "graphs": "exported" if graphs == "export" else "shipped",
            **({"random_weights_skipped": random_skipped} if random_skipped else {}),
            **shown,
        },
        "seconds": seconds,
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    click.echo("")
    click.echo(f"{'model':<16} {'ranking':<11} " + " ".join(f"{m:>12}" for m in METRICS))
    for model, rows in metrics.items():
        for ranking, values in rows.items():
            click.echo(f"{model:<16} {ranking:<11} " + " ".join(f"{values[m]:>12.4f}" for m in METRICS))
    click.echo("")
    click.echo(
        f"wrote {out / 'metrics.json'}, {out / 'results.html'}, {out / 'results.png'}, {out / 'explanation.png'}, "
        f"{out / 'synthesis.png'} in {seconds['wall_s']:.0f} s ({seconds['cpu_s']:.0f} CPU s)"
    )
    click.echo(f"use them with zse: export folder {out / 'export'}, gallery {out / 'gallery'} (see README)")
    if serve_after:
        from ..serve.demo import serve_demo

        serve_demo(retriever, try_drawing=tuple(sorted({g.label for g in assets.gallery})))


if __name__ == "__main__":  # pragma: no cover
    main()
