"""``zse``: index photos into a gallery and search it with sketches, from an export folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .common import CODECS, FILE, FOLDER, ZseGroup, backend_option, gallery_option, ray_options, rerank_note
from .export import main as export_group
from .gallery import gallery
from .serve import serve

#: --help texts too long to sit on their option's line
_HELP = {
    "index --gallery": "Gallery folder or URI (s3://, gs://, az://): created if missing, appended to otherwise.",
    "codec": "How a NEW gallery stores tokens: int8 halves float16, pq (PCA + 8-bit) is 8x smaller on the demo model "
    "and more on wider ones, none stores none (stage 2 re-encodes from the files).",
    "on-error": "Stop at the first unreadable photo (batches committed before it stay; re-running continues), "
    "or skip and report it.",
    "search --rerank": "Candidates reranked by the relation head: 0 = ret-token only, 'all' = exhaustive; "
    "default: the depth recorded in the export folder (printed).",
    "dataset": "An official split (sketchy_ext_25, sketchy_ext_21, tuberlin_ext, quickdraw_ext) or 'folder' "
    "(ROOT/sketch/<class>/*, ROOT/photo/<class>/*).",
    "root": "Dataset root (the official --data_path, or the folder-per-class root).",
    "all": "Evaluate on the whole test set (official --testall); default: the official subsampled quick test.",
    "eval --rerank": "For two-stage ranking; default: the depth recorded in the export folder (printed).",
    "top": "Matches drawn (numbered markers; only on strokes of the sketch and on the photo's object).",
    "ink-only": "Replace only the stroke patches (default: strokes and what they enclose).",
}


def _rerank(ctx, param, value: str | None) -> int | str | None:
    """--rerank: an integer >= 0, 'all', or unset (None: the depth the export folder records)."""
    if value is None or value == "all":
        return value
    try:
        n = int(value)
    except ValueError:
        raise click.BadParameter(f"received {value!r}, expected an integer >= 0 or 'all'") from None
    if n < 0:
        raise click.BadParameter(f"received {n}, expected an integer >= 0 or 'all'")
    return n


@click.group("zse", cls=ZseGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Zero-shot sketch-based image retrieval with a ZSE-SBIR export folder."""


main.add_command(serve)
main.add_command(gallery)
main.add_command(export_group, name="export")  # the same group object as the zse-export script


@main.command()
@click.argument("export_dir", type=FOLDER)
@click.argument("photos", nargs=-1, type=click.Path(path_type=Path))
@gallery_option(_HELP["index --gallery"], required=True)
@click.option("--codec", type=click.Choice(CODECS), default="float16", show_default=True, help=_HELP["codec"])
@click.option("--list", "list_file", type=FILE, help="A text file with one photo path per line (relative to the file).")
@click.option("--batch-size", type=int, help="Photos per encoder call (default: the graph's max batch).")
@click.option(
    "--on-error", type=click.Choice(["raise", "skip"]), default="raise", show_default=True, help=_HELP["on-error"]
)
@backend_option
@ray_options
def index(
    export_dir, photos, gallery_dir, storage_options, codec, list_file, batch_size, on_error, backend, ray
) -> None:
    """Encode PHOTOS (files or folders) into the gallery. Re-running continues an interrupted run."""
    from ..runtime.photo_sources import read_list_file
    from ..runtime.retriever import Retriever

    sources = [str(p) for p in photos] + (read_list_file(list_file) if list_file else [])
    if not sources:
        raise click.UsageError("give photos or folders, or --list FILE")
    r = Retriever.load(
        export_dir, gallery=gallery_dir, create=True, codec=codec, backend=backend, storage_options=storage_options
    )
    executor = None  # this process
    if ray:  # where the job runs is chosen here, where it starts: the indexing loop is the same
        from ..distributed.ray_index import RayIndexExecutor

        executor = RayIndexExecutor(ray)
    report = r.index(sources, batch_size=batch_size, on_error=on_error, executor=executor)
    click.echo(
        f"{gallery_dir}: {len(r)} photos ({report.added} added, {report.skipped_existing} already stored"
        + (f", {report.resumed} resumed" if report.resumed else "")
        + (f", {len(report.failed)} skipped as unreadable" if report.failed else "")
        + f") [{r.backend}]"
    )
    for source, reason in report.failed:
        # One line per file; the reason usually starts with the file's name already.
        click.echo(f"skipped {reason}" if reason.startswith(source) else f"skipped {source}: {reason}", err=True)


@main.command()
@click.argument("export_dir", type=FOLDER)
@click.argument("sketches", nargs=-1, required=True, type=click.Path(path_type=Path))
@gallery_option("Gallery folder or URI (s3://, gs://, az://).", required=True)
@click.option("--k", type=click.IntRange(min=1), default=10, show_default=True, help="Results per sketch.")
@click.option("--rerank", callback=_rerank, metavar="N|all", help=_HELP["search --rerank"])
@backend_option
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Write results as JSON to this file ('-' for stdout).",
)
@click.option("--page", type=FILE, help="Write an HTML results page.")
def search(export_dir, sketches, gallery_dir, storage_options, k, rerank, backend, json_out, page) -> None:
    """Search the gallery with one or more SKETCHES."""
    from ..runtime.gallery.store import Gallery
    from ..runtime.photo_sources import expand_sources
    from ..runtime.retriever import Retriever

    # (a format-1 gallery goes on: load names the migration)
    if not Gallery.exists(gallery_dir, storage_options) and not Gallery.is_format1(gallery_dir):
        raise click.BadParameter(f"{gallery_dir}: no gallery here (index photos first)", param_hint="--gallery")
    r = Retriever.load(export_dir, gallery=gallery_dir, backend=backend, storage_options=storage_options)
    queries = expand_sources([str(s) for s in sketches])
    results = r.search_batch(queries, k=k, rerank=rerank)
    note = rerank_note(r.manifest, rerank)
    click.echo(note, err=True)
    rerank = r.manifest.default_rerank if rerank is None else rerank
    fields = ("rank", "id", "path", "score", "stage")  # a Hit's, in this order (not its gallery row)
    payload: list[dict[str, Any]] = [
        {"sketch": str(q), "hits": [{name: getattr(h, name) for name in fields} for h in hits]}
        for q, hits in zip(queries, results, strict=False)
    ]
    if page:
        from ..evaluation.results_page import QueryResult, write_results_page

        shown = [QueryResult(q, hits) for q, hits in zip(queries, results, strict=False)]
        subtitle = f"{len(queries)} sketch(es), top {k} of {len(r)} photos in {gallery_dir}; {note}"
        write_results_page(page, shown, title="zse search", subtitle=subtitle)
    if json_out:
        text = json.dumps({"k": k, "rerank": rerank, "backend": r.backend, "results": payload}, indent=2)
        if str(json_out) == "-":
            click.echo(text)
            return
        json_out.write_text(text + "\n")
    for item in payload:
        click.echo(item["sketch"])
        for h in item["hits"]:
            click.echo(f"  {h['rank']:>3}  {h['score']:.4f}  {h['id']}")


@main.command("eval")
@click.argument("export_dir", type=FOLDER)
@click.option("--dataset", required=True, help=_HELP["dataset"])
@click.option(
    "--root", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path), help=_HELP["root"]
)
@click.option("--all", "test_all", is_flag=True, help=_HELP["all"])
@click.option(
    "--ranking",
    type=click.Choice(["ret-token", "two-stage", "exhaustive", "sa", "rn"]),
    default="two-stage",
    show_default=True,
    help="sa and rn: the official code's names for ret-token and exhaustive.",
)
@click.option("--rerank", type=click.IntRange(min=0), help=_HELP["eval --rerank"])
@click.option("--k", "ks", type=click.IntRange(min=1), multiple=True, help="Extra cut-offs for P@K and mAP@K.")
@gallery_option("Keep the encoded photos here, a folder or URI (re-runs resume instead of re-encoding).")
@backend_option
@click.option("--json", "json_out", type=FILE, help="Write the JSON report here.")
@click.option("--page", type=FILE, help="Also write an HTML page with the first queries and their top 10 hits.")
@ray_options
def evaluate_cmd(
    export_dir, dataset, root, test_all, ranking, rerank, ks, gallery_dir, storage_options, backend, json_out, page, ray
) -> None:
    """Evaluate EXPORT_DIR with the paper's protocol (mAP@all, mAP@200, P@100, P@200)."""
    from ..evaluation.datasets import load_image_folders, load_official_split
    from ..evaluation.protocol import evaluate, ranking_name
    from ..runtime.retriever import Retriever

    ranking = ranking_name(ranking)  # one name in the progress bars and the report, whichever was typed
    eval_set = (
        load_image_folders(root) if dataset == "folder" else load_official_split(root, dataset, subsample=not test_all)
    )
    click.echo(eval_set.describe(), err=True)
    r = Retriever.load(export_dir, gallery=gallery_dir, create=True, backend=backend, storage_options=storage_options)
    if ranking == "two-stage":
        click.echo(rerank_note(r.manifest, rerank), err=True)
    rerank = r.manifest.default_rerank if rerank is None else rerank
    executor = None  # this process
    if ray:  # where the job runs is chosen here, where it starts: the loop is the same
        from ..distributed.ray_eval import RayExecutor

        executor = RayExecutor(ray)
    report = evaluate(r, eval_set, ranking=ranking, rerank=rerank, ks=ks, executor=executor)
    text = json.dumps(report, indent=2)
    if json_out:
        json_out.write_text(text + "\n")
    click.echo(text)
    if page:
        from ..evaluation.results_page import QueryResult, write_results_page

        names = list(eval_set.class_names)
        labels = {str(p): names[c] for p, c in zip(eval_set.photo_paths, eval_set.photo_labels, strict=False)}
        queries = list(zip(eval_set.sketch_paths, eval_set.sketch_labels, strict=False))[:20]
        depth = {"two-stage": rerank, "exhaustive": "all"}.get(ranking, 0)
        hits = r.search_batch([str(q) for q, _ in queries], k=10, rerank=depth)
        results = [QueryResult(str(q), h, names[c]) for (q, c), h in zip(queries, hits, strict=False)]
        write_results_page(page, results, labels)


@main.command()
@click.argument("export_dir", type=FOLDER)
@click.argument("sketch", type=click.Path(path_type=Path))
@click.argument("photo", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=FILE, help="PNG to write.")
@click.option("--top", type=click.IntRange(min=1), default=6, show_default=True, help=_HELP["top"])
@click.option("--json", "json_out", type=FILE, help="Also write the matches as JSON.")
@backend_option
def explain(export_dir, sketch, photo, out, top, json_out, backend) -> None:
    """Show why SKETCH matches PHOTO: matched parts and where the model looks."""
    from ..runtime.retriever import Retriever

    r = Retriever.load(export_dir, backend=backend)
    exp = r.explain(str(sketch), str(photo), out=out, top=top)
    if json_out:
        json_out.write_text(json.dumps(exp.to_dict(), indent=2) + "\n")
    shown = exp.readable_matches(top)
    click.echo(f"{out}: relation score {exp.score:.3f} (0 = unrelated, 1 = sure)")
    if shown:
        m = shown[0]
        click.echo(
            f"  {len(shown)} matched parts numbered in the picture; the strongest (1): sketch patch "
            f"row {m.sketch_patch[0]}, col {m.sketch_patch[1]} <-> photo patch row {m.photo_patch[0]}, "
            f"col {m.photo_patch[1]} (feature cosine {m.similarity:.2f})"
        )
    else:
        click.echo("  no match falls on a stroke of the sketch and on the photo's object: only heat maps are drawn")


@main.command()
@click.argument("export_dir", type=FOLDER)
@click.argument("sketch", type=click.Path(path_type=Path))
@click.argument("photos", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=FILE, help="PNG to write.")
@gallery_option("Use the top --k hits of a search in this gallery (folder or URI) instead of PHOTOS.")
@click.option("--k", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--ink-only", is_flag=True, help=_HELP["ink-only"])
@backend_option
def synthesize(export_dir, sketch, photos, out, gallery_dir, storage_options, k, ink_only, backend) -> None:
    """Redraw SKETCH with patches of PHOTOS (or of the top search hits): sketch, result and sources in one PNG."""
    from ..runtime.retriever import Retriever

    if not photos and not gallery_dir:
        raise click.UsageError("give PHOTOS or --gallery")
    r = Retriever.load(export_dir, gallery=gallery_dir, backend=backend, storage_options=storage_options)
    sources = list(r.search(str(sketch), k=k)) if gallery_dir and not photos else [str(p) for p in photos]
    result = r.synthesize(str(sketch), sources, out=out, ink_only=ink_only)
    part = "stroke" if ink_only else "drawing"
    used = [f"{name} ({result.taken_from(i)})" for i, name in enumerate(result.names) if result.taken_from(i)]
    click.echo(
        f"{out}: {result.replaced} of {len(result.source)} sketch patches ({part} patches) redrawn "
        f"from {len(used)} of {len(sources)} photo(s): {', '.join(used) or 'none'}"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
