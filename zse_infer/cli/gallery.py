"""``zse gallery info|compact|migrate``: look after a gallery without a model."""

from __future__ import annotations

import json

import click

from .common import CODECS, FOLDER, GALLERY, ZseGroup, storage_option


@click.group("gallery", cls=ZseGroup)
def gallery() -> None:
    """Inspect, compact or migrate a gallery folder."""


@gallery.command()
@click.argument("gallery_dir", type=GALLERY)
@storage_option
@click.option("--json", "as_json", is_flag=True, help="Print the details as JSON.")
def info(gallery_dir, storage_options, as_json) -> None:
    """Photos, model, codec, versions and the stage-1 index of GALLERY_DIR (a folder or URI)."""
    from ..runtime.gallery.store import Gallery

    g = Gallery.open(gallery_dir, storage_options=storage_options)
    details = g.info()
    if g.location.local is None:
        details["stage1"] = "not persisted on object storage (built in memory above the approximate threshold)"
    elif (stage1 := g.location.local / "stage1" / "ivf.json").is_file():
        details["stage1"] = json.loads(stage1.read_text())
    else:
        details["stage1"] = "exact (no index file below the approximate threshold)"
    lines = (f"{key:>16}: {value}" for key, value in details.items())
    click.echo(json.dumps(details, indent=2) if as_json else "\n".join(lines))


@gallery.command()
@click.argument("gallery_dir", type=GALLERY)
@storage_option
@click.option(
    "--keep-versions",
    type=click.FloatRange(min=0),
    help="Keep each old version this many seconds after a newer one replaced it, for readers still on it "
    "(default: 600; docs/guarantees.md).",
)
def compact(gallery_dir, storage_options, keep_versions) -> None:
    """Merge small fragments, drop deleted rows, old versions and files of killed writers."""
    from ..runtime.gallery.store import Gallery

    g = Gallery.open(gallery_dir, storage_options=storage_options)
    stats = g.compact(keep_versions_seconds=keep_versions)
    done = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in stats.items() if v is not None)
    click.echo(f"{gallery_dir}: {len(g)} photos; {done}")


@gallery.command()
@click.argument("old", type=FOLDER)
@click.argument("new", type=FOLDER)
@click.option(
    "--codec", type=click.Choice(CODECS), default="float16", show_default=True, help="Token codec of the new gallery."
)
def migrate(old, new, codec) -> None:
    """Convert the format-1 gallery OLD into a new gallery NEW, without re-encoding."""
    from ..runtime.gallery.migrate import migrate as run

    g = run(old, new, codec=codec)
    click.echo(f"{new}: {len(g)} photos migrated from {old} (codec {g.codec.name})")
