"""MkDocs hook: the command-line reference, generated from the click commands at build time.

A page containing ``<!-- cli-reference -->`` gets, in its place, one section per console
script and subcommand: usage, the command's own help text and a list of its options.
Generated rather than written by hand so that a new command or option can never be missing
from the site (``mkdocs build --strict`` imports the commands; a command that fails to import
fails the build).
"""

from __future__ import annotations

import html
import importlib
import re
from typing import Any

import click

MARKER = "<!-- cli-reference -->"
#: console scripts, as pyproject.toml names them: (name, "module:attribute")
SCRIPTS = (
    ("zse", "zse_infer.cli.main:main"),
    ("zse-export", "zse_infer.cli.export:main"),
    ("zse-demo", "zse_infer.demo.cli:main"),
)


def _load(target: str) -> click.Command:
    module, attribute = target.split(":")
    return getattr(importlib.import_module(module), attribute)


def _text(text: str) -> str:
    """Help text as Markdown that shows it as written: ``<class>/*`` is neither a tag nor emphasis."""
    text = html.escape(" ".join(text.split()), quote=False)
    return re.sub(r"([\\`*_\[\]])", r"\\\1", text)


def _option_lines(command: click.Command, ctx: click.Context) -> list[str]:
    lines = []
    help_option = command.get_help_option(ctx)  # named "help" or "_click_default_help", by click version
    for param in command.get_params(ctx):
        record = None if isinstance(param, click.Argument) or param is help_option else param.get_help_record(ctx)
        if record is None:  # arguments are in the usage line; -h, --help is everywhere (said at the top)
            continue
        names, help_text = record
        lines.append(f"- `{names}`" + (f": {_text(help_text)}" if help_text else ""))
    return lines


def _sections(
    name: str, command: click.Command, parent: click.Context | None, depth: int, seen: dict[int, str]
) -> list[str]:
    ctx = click.Context(command, info_name=name, parent=parent)
    if id(command) in seen:  # an alias (zse-export is zse export): one section, not two
        return [f"{'#' * depth} `{ctx.command_path}`", "", f"The same command as `{seen[id(command)]}`.", ""]
    seen[id(command)] = ctx.command_path
    usage = " ".join(command.collect_usage_pieces(ctx))
    lines = [f"{'#' * depth} `{ctx.command_path}`", "", f"```\n{ctx.command_path} {usage}\n```", ""]
    if command.help:
        lines += [_text(click.unstyle(command.help).split("\b")[0]), ""]
    options = _option_lines(command, ctx)
    if options:
        lines += [*options, ""]
    if isinstance(command, click.Group):
        for sub_name in command.list_commands(ctx):
            lines += _sections(sub_name, command.get_command(ctx, sub_name), ctx, depth + 1, seen)
    return lines


def cli_reference() -> str:
    """The Markdown of every console script and subcommand."""
    lines: list[str] = []
    seen: dict[int, str] = {}
    for name, target in SCRIPTS:
        lines += _sections(name, _load(target), None, 2, seen)
    return "\n".join(lines)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return markdown.replace(MARKER, cli_reference()) if MARKER in markdown else markdown
