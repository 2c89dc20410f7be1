"""Shared pieces of the command-line tools: logging setup, ZseError -> clean exit, the rerank note."""

from __future__ import annotations

import functools
import logging
import re

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


def rerank_source(manifest) -> str:
    """Why the export folder's rerank depth is what it is: its recorded note (``search.source`` in the
    manifest, often long: the measurement behind it), or that it records none."""
    from ..manifest import DEFAULT_RERANK

    source = (manifest.extra.get("search") or {}).get("source")
    return source or f"this export records none: the default {DEFAULT_RERANK}"


def rerank_note(manifest, rerank) -> str:
    """One short line: the stage-2 depth a command uses and where it came from, the caller's
    ``--rerank`` or the export folder's recorded choice. The recorded note is cut to its first
    clause (e.g. "measured on seen concepts"); the whole note is in the manifest
    (:func:`rerank_source`)."""
    if rerank is not None:
        return f"rerank {rerank} (--rerank)"
    source = (manifest.extra.get("search") or {}).get("source")
    if not source:
        return f"rerank {manifest.default_rerank} ({rerank_source(manifest)})"
    summary = re.split(r"\s*[(:;]", source, maxsplit=1)[0].strip()
    return f"rerank {manifest.default_rerank} (recorded in the export: {summary}; details: manifest.json, \"search\")"


verbose_option = click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
