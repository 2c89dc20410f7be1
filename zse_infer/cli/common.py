"""Shared pieces of the command-line tools: logging setup, ZseError -> clean exit, the rerank note."""

from __future__ import annotations

import functools
import logging

import click

from ..errors import ZseError


def setup_logging(verbose: int) -> None:
    """-v shows our own progress log; other libraries (onnx_ir, onnxscript log every pass at INFO) only with -vv."""
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("zse_infer").setLevel(level)


def zse_errors(func):
    """Report our errors as one clean line (exit code 1) instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ZseError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def rerank_note(manifest, rerank) -> str:
    """The stage-2 depth a command uses and where it came from: the caller's ``--rerank`` or
    the export folder's recorded choice (``search`` in the manifest), for the user to see."""
    if rerank is not None:
        return f"rerank {rerank} (--rerank)"
    from ..manifest import DEFAULT_RERANK

    source = (manifest.extra.get("search") or {}).get("source")
    where = f"recorded in the export: {source}" if source else f"this export records none: the default {DEFAULT_RERANK}"
    return f"rerank {manifest.default_rerank} ({where})"


verbose_option = click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
