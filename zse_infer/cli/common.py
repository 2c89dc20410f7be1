"""Shared pieces of the command-line tools: logging setup and ZseError -> clean exit."""

from __future__ import annotations

import functools
import logging

import click

from ..errors import ZseError


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def zse_errors(func):
    """Report our errors as one clean line (exit code 1) instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ZseError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


verbose_option = click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
