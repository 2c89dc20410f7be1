"""``zse``: index photos into a gallery and search it with sketches, from an export folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .common import setup_logging, verbose_option, zse_errors

BACKEND_CHOICES = ["auto", "tensorrt", "onnxruntime", "onnxruntime-cpu", "torch"]


def _rerank(value: str) -> int | str:
    if value == "all":
        return "all"
    try:
        n = int(value)
    except ValueError:
        raise click.BadParameter(f"received {value!r}, expected an integer >= 0 or 'all'") from None
    if n < 0:
        raise click.BadParameter(f"received {n}, expected an integer >= 0 or 'all'")
    return n


@click.group()
def main() -> None:
    """Zero-shot sketch-based image retrieval with a ZSE-SBIR export folder."""


@main.command()
@click.argument("export_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("photos", nargs=-1, type=click.Path(path_type=Path))
@click.option("--gallery", "gallery_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Gallery folder: created if missing, appended to otherwise.")
@click.option("--list", "list_file", type=click.Path(dir_okay=False, path_type=Path),
              help="A text file with one photo path per line (relative to the file).")
@click.option("--batch-size", type=int, default=None, help="Photos per encoder call (default: the graph's max batch).")
@click.option("--on-error", type=click.Choice(["raise", "skip"]), default="raise", show_default=True,
              help="Stop at the first unreadable photo (gallery unchanged), or skip and report it.")
@click.option("--backend", type=click.Choice(BACKEND_CHOICES), default="auto", show_default=True)
@verbose_option
@zse_errors
def index(export_dir, photos, gallery_dir, list_file, batch_size, on_error, backend, verbose) -> None:
    """Encode PHOTOS (files or folders) into the gallery. Re-running resumes an interrupted run."""
    from ..retriever import Retriever
    from ..sources import read_list_file

    setup_logging(verbose)
    sources = [str(p) for p in photos] + (read_list_file(list_file) if list_file else [])
    if not sources:
        raise click.UsageError("give photos or folders, or --list FILE")
    r = Retriever.load(export_dir, gallery=gallery_dir, backend=backend)
    report = r.index(sources, batch_size=batch_size, on_error=on_error)
    click.echo(
        f"{gallery_dir}: {len(r)} photos ({report.added} added, {report.skipped_existing} already stored"
        + (f", {report.resumed} resumed" if report.resumed else "")
        + (f", {len(report.failed)} skipped as unreadable" if report.failed else "")
        + f") [{r.backend}]"
    )
    for source, reason in report.failed:
        click.echo(f"skipped: {reason}", err=True)


@main.command()
@click.argument("export_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("sketches", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--gallery", "gallery_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--k", type=click.IntRange(min=1), default=10, show_default=True, help="Results per sketch.")
@click.option("--rerank", default="100", show_default=True,
              help="Candidates reranked by the relation head: 0 = ret-token only, 'all' = exhaustive.")
@click.option("--backend", type=click.Choice(BACKEND_CHOICES), default="auto", show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="Write results as JSON to this file ('-' for stdout).")
@verbose_option
@zse_errors
def search(export_dir, sketches, gallery_dir, k, rerank, backend, json_out, verbose) -> None:
    """Search the gallery with one or more SKETCHES."""
    from ..retriever import Retriever
    from ..sources import expand_sources

    setup_logging(verbose)
    rerank = _rerank(rerank)
    if not (gallery_dir / "gallery.json").is_file():
        raise click.BadParameter(f"{gallery_dir}: no gallery here (index photos first)", param_hint="--gallery")
    r = Retriever.load(export_dir, gallery=gallery_dir, backend=backend)
    queries = expand_sources([str(s) for s in sketches])
    results = r.search_batch(queries, k=k, rerank=rerank)
    payload = [
        {"sketch": str(q), "hits": [{"rank": h.rank, "id": h.id, "path": h.path, "score": h.score, "stage": h.stage} for h in hits]}
        for q, hits in zip(queries, results)
    ]
    if json_out:
        text = json.dumps({"k": k, "rerank": rerank, "backend": r.backend, "results": payload}, indent=2)
        if str(json_out) == "-":
            click.echo(text)
        else:
            json_out.write_text(text + "\n")
        if str(json_out) == "-":
            return
    for item in payload:
        click.echo(item["sketch"])
        for h in item["hits"]:
            click.echo(f"  {h['rank']:>3}  {h['score']:.4f}  {h['id']}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
