"""Shared pieces of the command-line tools: the one error wrapper, logging setup (``-v``), shared options."""

from __future__ import annotations

import errno
import functools
import logging
import re
import sys
import traceback
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import click

from ..errors import ZseError

#: exit code of an unexpected exception (a bug, or a case zse-infer does not handle): BSD's
#: EX_SOFTWARE, so that scripts can tell it from an error in their input (1) or usage (2)
UNEXPECTED_EXIT = 70

#: optional packages a command may import on its way (the torch side imports torch at module
#: level) and the extra that installs each: their absence is a missing extra, not a bug
_EXTRAS = {
    **dict.fromkeys(["torch", "onnx", "onnxscript", "timm", "safetensors"], "export"),
    **dict.fromkeys(["fastapi", "uvicorn"], "serve"),
    **dict(onnxruntime="runtime", tensorrt="gpu", faiss="ann", ray="ray"),
}

_META = "zse_infer.cli"  # ctx.meta key (shared by a command and its subcommands): what -v recorded
#: --help texts too long to sit on their option's line
_HELP = {
    "-v": "More log output (-v info, -vv debug; -v also shows the traceback of an unexpected error).",
    "storage-option": "An option of the object store a gallery URI (s3://, gs://, az://) names, e.g. "
    "aws_endpoint=http://minio:9000 (repeatable; credentials: the standard AWS_*/GOOGLE_*/AZURE_* variables, or "
    "options here).",
    "ray": "Run on Ray (the extra 'ray'): encoder actors on a cluster, or a local Ray on this machine.",
    "ray-address": "Ray cluster to join: 'auto', or 'ray://HEAD:10001' (default: RAY_ADDRESS, or start a local Ray).",
}


def _verbosity(ctx: click.Context, param: click.Parameter, value: int) -> None:
    """``-v``'s callback: record the verbosity (the highest count given at any level: ``zse-export -v validate``
    counts) and the command for the error wrapper, and set up logging: -v shows our own progress log; other
    libraries (onnx_ir, onnxscript log every pass at INFO) only with -vv."""
    seen = ctx.meta.setdefault(_META, {"verbose": 0})
    seen.update(verbose=max(seen["verbose"], value or 0), command=ctx.command_path)
    verbose, log_format = seen["verbose"], "%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.WARNING, format=log_format)
    logging.getLogger("zse_infer").setLevel((logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)])


def verbosity() -> int:
    """The ``-v`` count of the running command (the highest given at any level)."""
    return click.get_current_context().meta.get(_META, {}).get("verbose", 0)


verbose_option = click.option("-v", "--verbose", count=True, callback=_verbosity, expose_value=False, help=_HELP["-v"])


class _UnexpectedError(click.ClickException):
    exit_code = UNEXPECTED_EXIT


@contextmanager
def reported_errors(ctx: click.Context) -> Iterator[None]:
    """The one error wrapper: a :class:`ZseError`, an OS error or a missing optional package (naming its extra) is
    one message and exit 1; anything else is one line, a hint to ``-v`` and exit :data:`UNEXPECTED_EXIT`."""
    try:
        yield
    except (click.ClickException, click.exceptions.Exit, click.Abort, EOFError):
        raise  # click reports these itself (EOFError: as Ctrl-C)
    except ZseError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        if exc.errno == errno.EPIPE:  # `zse search ... | head`: click quiets it
            raise
        # the machine said no (a missing folder, no permission, a full disk): not a bug
        where = f"{exc.filename}: " if exc.filename else ""
        raise click.ClickException(f"{where}{exc.strerror or exc}") from exc
    except ImportError as exc:
        package = (exc.name or "").split(".")[0]
        if package not in _EXTRAS:  # e.g. a name missing from one of our modules: a bug
            raise _unexpected(ctx, exc) from exc
        command = ctx.meta.get(_META, {}).get("command", ctx.command_path)
        raise click.ClickException(
            f"{command} needs the '{package}' package, which this install lacks: "
            f"pip install 'zse-infer[{_EXTRAS[package]}]'"
        ) from exc
    except Exception as exc:  # the top of a command line: nothing above us would say it better
        raise _unexpected(ctx, exc) from exc


def _unexpected(ctx: click.Context, exc: BaseException) -> click.ClickException:
    seen = ctx.meta.get(_META, {})
    if seen.get("verbose"):
        click.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)
    first = (str(exc).strip().splitlines() or [""])[0]
    where, detail = seen.get("command", ctx.command_path), f": {first}" if first else ""
    hint = "the traceback is above" if seen.get("verbose") else "re-run with -v for the traceback"
    return _UnexpectedError(f"unexpected {type(exc).__name__} in {where}{detail} (a bug or an unhandled case; {hint})")


class _OneWrapper:
    """Runs a console script's root command inside :func:`reported_errors` (subcommands: inside their root's)."""

    def invoke(self, ctx: click.Context) -> Any:
        with reported_errors(ctx) if ctx.parent is None else nullcontext():
            return super().invoke(ctx)  # type: ignore[misc]


class ZseCommand(_OneWrapper, click.Command):
    """A command that may be a console script's root (``zse-demo``); every one takes ``-v``, its last option."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        verbose_option(self)


class ZseGroup(_OneWrapper, click.Group):
    """A group whose commands and subgroups are :class:`ZseCommand` / :class:`ZseGroup`."""

    command_class = ZseCommand
    group_class = type  # subgroups: this class


class StepBar(AbstractContextManager):
    """A tqdm bar over a pipeline's named steps, as its ``on_step`` callback (a step counts once the next starts)."""

    def __init__(self, total: int, desc: str):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="step", file=sys.stderr, disable=None, leave=False)
        self.started = False

    def __call__(self, label: str) -> None:
        if self.started:
            self.bar.update(1)
        self.started = True
        self.bar.set_postfix_str(label)

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


def rerank_source(manifest) -> str:
    """Why the export's rerank depth is what it is: its recorded ``search.source`` note, or that it has none."""
    from ..manifest import DEFAULT_RERANK

    source = (manifest.extra.get("search") or {}).get("source")
    return source or f"this export records none: the default {DEFAULT_RERANK}"


def rerank_note(manifest, rerank) -> str:
    """One line: the stage-2 depth (and blend) used and where from: ``--rerank``, or the export's note, first clause."""
    search = manifest.extra.get("search") or {}
    blend = f" blend {search['blend']:g}" if search.get("blend") else ""
    if rerank is not None:
        return f"rerank {rerank}{blend} (--rerank)"
    depth, source = f"rerank {manifest.default_rerank}{blend}", search.get("source")
    if not source:
        return f"{depth} ({rerank_source(manifest)})"
    summary = re.split(r"\s*[(:;]", source, maxsplit=1)[0].strip()
    return f'{depth} (recorded in the export: {summary}; details: manifest.json, "search")'


def _storage_options(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, str]:
    from ..runtime.gallery.location import storage_options_from_pairs

    try:
        return storage_options_from_pairs(value)
    except ZseError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


#: ``--storage-option KEY=VALUE``: as Lance takes them, on top of the standard variables
storage_option = click.option(
    "--storage-option",
    "storage_options",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_storage_options,
    help=_HELP["storage-option"],
)

#: a gallery: a local folder or an object-storage URI (a string: click's Path type would
#: collapse 's3://' into 's3:/'; the one parser, runtime/gallery/location.py, reads it)
GALLERY = click.STRING
#: token codecs of a new gallery
CODECS = ["float16", "int8", "pq", "none"]
#: files and folders the commands read or write, as ``pathlib.Path``
PATH = click.Path(path_type=Path)
FILE = click.Path(dir_okay=False, path_type=Path)
FOLDER = click.Path(file_okay=False, path_type=Path)
EXISTING_FOLDER = click.Path(exists=True, file_okay=False, path_type=Path)


def gallery_option(help: str, required: bool = False):
    """``--gallery`` and, after it, the ``--storage-option`` its URI may need."""
    gallery = click.option("--gallery", "gallery_dir", required=required, type=GALLERY, help=help)
    return lambda func: gallery(storage_option(func))


def backend_option(func):
    from ..runtime.runners.select import BACKENDS

    return click.option("--backend", type=click.Choice(list(BACKENDS)), default="auto", show_default=True)(func)


def ray_options(func):
    """``--ray`` / ``--ray-address``, shared by ``zse index`` and ``zse eval``: the command gets ``ray``,
    the :class:`~zse_infer.distributed.ray_index.RayOptions` to run with (None: in this process)."""

    @click.option("--ray", "use_ray", is_flag=True, help=_HELP["ray"])
    @click.option("--ray-address", metavar="ADDR", help=_HELP["ray-address"])
    @functools.wraps(func)
    def wrapper(*args, use_ray=False, ray_address=None, **kwargs):
        if ray_address and not use_ray:
            raise click.UsageError("--ray-address needs --ray")
        ray = None
        if use_ray:
            from ..distributed.ray_index import RayOptions

            ray = RayOptions(address=ray_address)
        return func(*args, ray=ray, **kwargs)

    return wrapper
