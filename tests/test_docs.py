"""The documentation: the README stays short and true to the commands, and the site builds strictly
(``mkdocs build --strict``: a broken link, a missing page, a bad anchor or an unreadable docstring fails)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _without_comments(text: str) -> str:
    return re.sub(r"<!--.*?-->", "", text, flags=re.S)


def test_readme_is_short():
    assert len(README.read_text().splitlines()) <= 150, "README.md: keep it under 150 lines; details go to docs/"


def test_readme_names_every_command():
    from zse_infer.cli.main import main

    text = README.read_text()
    ctx = main.make_context("zse", [], resilient_parsing=True)
    missing = [f"zse {name}" for name in main.list_commands(ctx) if f"`zse {name}" not in text]
    missing += [script for script in ("zse-export", "zse-demo") if f"`{script}" not in text]
    assert not missing, f"README.md's command table lacks {missing}"


def test_readme_links_resolve():
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", _without_comments(README.read_text()))
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert local, "no relative links found: the pattern is wrong"
    broken = [link for link in local if not (ROOT / link).exists()]
    assert not broken, f"README.md links to missing files: {broken}"


def test_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="needs the docs extra (pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings", reason="needs the docs extra (pip install -e '.[docs]')")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").exists() and (tmp_path / "site" / "api" / "cli" / "index.html").exists()
    cli = (tmp_path / "site" / "api" / "cli" / "index.html").read_text()
    assert "zse search" in cli and "--rerank" in cli  # the generated command-line reference
