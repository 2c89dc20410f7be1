"""A results page: each query sketch with its top hits and scores; correct hits marked.

One self-contained HTML file (thumbnails inlined as base64 PNG, no external
assets), and optionally the same as a PNG grid for places that show images.
"""

from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..preprocess import ImageSource, describe_source

THUMB = 112


@dataclass
class QueryResult:
    sketch: ImageSource
    hits: Sequence  # zse_infer.runtime.retriever.Hit
    label: str | None = None  # the query's class, when known


def _thumbnail(source: ImageSource | None, size: int = THUMB):
    from PIL import Image, ImageOps

    if source is None:
        return Image.new("RGB", (size, size), (230, 230, 230))
    if isinstance(source, np.ndarray):
        image = Image.fromarray(source)
    elif isinstance(source, Image.Image):
        image = source
    else:
        data = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
        image = Image.open(io.BytesIO(data))
    return ImageOps.pad(image.convert("RGB"), (size, size), color=(255, 255, 255))


def _data_uri(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def write_results_page(
    path: str | os.PathLike, results: Sequence[QueryResult], labels: Mapping[str, str] | None = None, title: str = "zse-infer results"
) -> Path:
    """Write the HTML page. ``labels`` maps gallery ids to classes (marks correct hits)."""
    labels = labels or {}
    rows = []
    n_correct = n_known = 0
    for q in results:
        cells = [
            f'<td class="query"><img src="{_data_uri(_thumbnail(q.sketch))}" alt="query">'
            f"<div>{html.escape(q.label or describe_source(q.sketch).rsplit('/', 1)[-1])}</div></td>"
        ]
        for h in q.hits:
            hit_label = labels.get(h.id)
            known = q.label is not None and hit_label is not None
            correct = known and hit_label == q.label
            n_known += known
            n_correct += correct
            css = "hit correct" if correct else ("hit wrong" if known else "hit")
            mark = " &#10003;" if correct else (" &#10007;" if known else "")
            stage = "relation" if h.stage == 2 else "ret-token"
            cells.append(
                f'<td class="{css}"><img src="{_data_uri(_thumbnail(h.path))}" alt="{html.escape(h.id)}">'
                f"<div>#{h.rank} {h.score:.3f}{mark}</div><div class=\"small\">{html.escape(hit_label or '')} · {stage}</div></td>"
            )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    summary = f"{n_correct} of {n_known} labelled hits correct" if n_known else ""
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; }}
table {{ border-collapse: separate; border-spacing: 6px; }}
td {{ text-align: center; vertical-align: top; font-size: 12px; padding: 4px; border: 3px solid transparent; }}
td.query {{ background: #eef; }}
td.correct {{ border-color: #2a2; }}
td.wrong {{ border-color: #d33; }}
.small {{ color: #666; font-size: 11px; }}
img {{ width: {THUMB}px; height: {THUMB}px; display: block; }}
</style></head><body>
<h1>{html.escape(title)}</h1><p>{html.escape(summary)} (green: correct class, red: other class).</p>
<table>{''.join(rows)}</table></body></html>
"""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out


def write_results_grid(path: str | os.PathLike, results: Sequence[QueryResult], labels: Mapping[str, str] | None = None) -> Path:
    """The same content as a PNG grid: one row per query, coloured frames for correct/wrong hits."""
    from PIL import Image, ImageDraw

    labels = labels or {}
    cols = 1 + max((len(q.hits) for q in results), default=0)
    cell, pad, text_h = THUMB, 8, 16
    canvas = Image.new("RGB", (cols * (cell + pad) + pad, len(results) * (cell + pad + text_h) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for r, q in enumerate(results):
        y = pad + r * (cell + pad + text_h)
        canvas.paste(_thumbnail(q.sketch, cell), (pad, y))
        draw.text((pad, y + cell + 2), (q.label or "query")[:18], fill="black")
        for c, h in enumerate(q.hits, start=1):
            x = pad + c * (cell + pad)
            canvas.paste(_thumbnail(h.path, cell), (x, y))
            hit_label = labels.get(h.id)
            if q.label is not None and hit_label is not None:
                color = (34, 170, 34) if hit_label == q.label else (221, 51, 51)
                draw.rectangle([x - 3, y - 3, x + cell + 2, y + cell + 2], outline=color, width=3)
            draw.text((x, y + cell + 2), f"#{h.rank}: {h.score:.3f}", fill="black")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
