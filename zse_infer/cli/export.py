"""``zse export`` (alias ``zse-export``): checkpoint -> deployable export folder; build engines, validate and
inspect folders (docs/export.md). One click group, :data:`main`: the console script and ``zse``'s subcommand
are the same object; the export options work on the group itself and on its ``export`` subcommand."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .common import PATH, StepBar, ZseGroup, verbose_option

_ROLES = ("encoder", "relation_head")
#: --help texts too long to sit on their option's line
_HELP = {
    "int8": "Also write int8 (dynamically quantised) graphs for ONNX Runtime on CPUs.",
    "recipe": "Recipe name (export/<name>.json) or path [default: named like --config, else zse_vit_b16].",
    "max-batch": "Largest batch of the engine profiles: N for both graphs, or ROLE=N (repeatable).",
    "overwrite": "Replace a non-empty --out folder (only once the new one is complete).",
    "engines": "Require / skip TensorRT engines [default: build them when TensorRT and a GPU are present].",
    "build --precision": "Engines to build [default: fp16 if the folder has fp16 graphs, else fp32].",
    "build --max-batch": "N or ROLE=N: the engine profile's max batch, also above the recipe's (the TensorRT runner "
    "then takes batches up to it; relation_* engines follow relation_head).",
    "validate --engines": "Also run the TensorRT engines built for this GPU (needs TensorRT + GPU).",
}


def _parse_max_batch(ctx, param, values: tuple[str, ...]) -> dict[str, int]:
    """``--max-batch 32`` (both graphs) or ``--max-batch encoder=32 --max-batch relation_head=512``."""
    out: dict[str, int] = {}
    for value in values:
        roles, _, number = value.rpartition("=")
        for role in [roles] if roles else _ROLES:
            if role not in _ROLES:
                raise click.BadParameter(f"received role {role!r}, expected one of {_ROLES}", param=param)
            try:
                out[role] = int(number)
            except ValueError:
                message = f"received {value!r}, expected N or ROLE=N with an integer N"
                raise click.BadParameter(message, param=param) from None
            if out[role] < 1:
                raise click.BadParameter(f"received {value!r}, expected a batch size >= 1", param=param)
    return out


_EXPORT_OPTIONS = [
    click.option("--checkpoint", type=PATH, help="Checkpoint (.pth/.safetensors) to export."),
    click.option("--out", type=PATH, help="Export folder [default: engines/<recipe name>]."),
    click.option("--fp16", is_flag=True, help="Also write float16 graphs (and build fp16 engines)."),
    click.option("--int8", is_flag=True, help=_HELP["int8"]),
    click.option("--config", "config_name", help="Model config name [default: the recipe's]."),
    click.option("--recipe", help=_HELP["recipe"]),
    click.option("--max-batch", multiple=True, callback=_parse_max_batch, help=_HELP["max-batch"]),
    click.option("--overwrite", is_flag=True, help=_HELP["overwrite"]),
    click.option("--engines/--no-engines", "engines", default=None, help=_HELP["engines"]),
    click.option("--cache-dir", type=PATH, help="Engine + timing cache [default: engines/cache]."),
]


def _export_options(func: Callable) -> Callable:
    for option in reversed(_EXPORT_OPTIONS):
        func = option(func)
    return func


def _run_export(checkpoint, out, fp16, int8, config_name, recipe, max_batch, overwrite, engines, cache_dir) -> None:
    from ..exporting.pipeline import ExportOptions, export_model, export_steps, resolve_recipe

    if checkpoint is None:
        raise click.UsageError("Missing option '--checkpoint' (or use a subcommand: build, validate, inspect).")
    resolved = resolve_recipe(recipe, config_name)
    out = out or Path("engines") / resolved.name
    engines = {None: "auto", True: "require", False: "never"}[engines]
    options = ExportOptions(
        fp16=fp16, int8=int8, max_batch=max_batch, overwrite=overwrite, engines=engines, cache_dir=cache_dir
    )
    started = time.perf_counter()
    with StepBar(len(export_steps(resolved, ("fp32", "fp16") if fp16 else ("fp32",))), "zse-export") as steps:
        manifest = export_model(checkpoint, out, config=config_name, recipe=resolved, options=options, on_step=steps)
    total = sum((out / g.file).stat().st_size for g in manifest.graphs.values()) / 1e6
    seconds = time.perf_counter() - started
    click.echo(f"wrote {len(manifest.graphs)} graphs ({total:.0f} MB) to {out} in {seconds:.0f} s")
    for gid, g in manifest.graphs.items():
        parity = ", ".join(f"{k} {v:.1e}" for k, v in g.parity.items())
        fused = ", ".join(f"{k} x{v}" for k, v in g.fused_nodes.items())
        click.echo(f"  {gid:<26} max abs error {parity}" + (f"  [{fused}]" if fused else ""))
    if manifest.engines:
        files = ", ".join(e["file"] for e in manifest.engines)
        click.echo(f"built {len(manifest.engines)} TensorRT engine(s): {files}")
    else:
        click.echo(f"wrote ONNX only, no TensorRT engines: {manifest.extra.get('tensorrt', {}).get('reason')}")
        click.echo(f"  on a machine with TensorRT and a GPU: zse-export build {out}")


@click.group(
    "zse-export", cls=ZseGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]}
)
@_export_options
@verbose_option
@click.pass_context
def main(ctx: click.Context, **kwargs: Any) -> None:
    """Export a ZSE-SBIR checkpoint to a deployable folder (ONNX graphs, manifest, TensorRT engines).

    Without a subcommand, exports (the same options as its export subcommand). The zse-export
    script and zse export are one command."""
    if ctx.invoked_subcommand is None:
        _run_export(**kwargs)


@main.command("export")
@_export_options
def export_cmd(**kwargs: Any) -> None:
    """Export --checkpoint into --out: graphs validated against PyTorch, manifest, engines if possible."""
    _run_export(**kwargs)


@main.command("build")
@click.argument("folder", type=PATH)
@click.option("--precision", type=click.Choice(["fp32", "fp16", "all"]), help=_HELP["build --precision"])
@click.option("--max-batch", multiple=True, callback=_parse_max_batch, help=_HELP["build --max-batch"])
@click.option("--cache-dir", type=PATH, help="Engine + timing cache [default: engines/cache].")
def build_cmd(folder: Path, precision: str | None, max_batch: dict[str, int], cache_dir: Path | None) -> None:
    """Build TensorRT engines for an existing export FOLDER (needs TensorRT and an NVIDIA GPU)."""
    from ..engines.build import build_engines

    precisions = None if precision is None else ("fp32", "fp16") if precision == "all" else (precision,)
    with StepBar(2, "zse-export build") as steps:
        entries = build_engines(folder, cache_dir=cache_dir, precisions=precisions, max_batch=max_batch, on_step=steps)
    for e in entries:
        click.echo(f"{e['file']}  ({e['precision']}, batch {e['batch']['min']}..{e['batch']['max']})")
    click.echo(f"check them: zse-export validate {folder} --engines")


@main.command("validate")
@click.argument("folder", type=PATH)
@click.option("--engines", is_flag=True, help=_HELP["validate --engines"])
@click.option("--skip-graphs", is_flag=True, help="With --engines: check only the engines.")
@click.option("--json", "json_path", type=PATH, help="Also write the report as JSON here.")
def validate_cmd(folder: Path, engines: bool, skip_graphs: bool, json_path: Path | None) -> None:
    """Parity report of FOLDER's graphs (ONNX Runtime CPU) and engines against the PyTorch outputs stored at export."""
    from ..exporting.report import format_rows, validate_folder

    rows = validate_folder(folder, engines=engines, graphs=not (engines and skip_graphs))
    click.echo(format_rows(rows))
    if json_path is not None:
        json_path.write_text(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
    failed = [r.target for r in rows if not r.passed]
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(rows)} beyond tolerance: {', '.join(failed)}")
    click.echo(f"all {len(rows)} within tolerance")


@main.command("inspect")
@click.argument("folder", type=PATH)
@click.option("--no-verify", is_flag=True, help="Do not recompute file hashes.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def inspect_cmd(folder: Path, no_verify: bool, as_json: bool) -> None:
    """Summarise an export FOLDER: model, graphs, sizes, parity, fused nodes, engines (hashes verified)."""
    from ..exporting.report import describe_folder
    from ..manifest import Manifest

    if as_json:
        click.echo(json.dumps(Manifest.load(folder, verify=not no_verify).to_dict(), indent=2))
    else:
        click.echo(describe_folder(folder, verify=not no_verify))


if __name__ == "__main__":  # pragma: no cover
    main()
