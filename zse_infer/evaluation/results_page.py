"""A results page: each query sketch with its top hits and scores, correct hits marked; a self-contained HTML file
(thumbnails inlined) or a PNG grid, each with a legend of only what is drawn and every label whole (wrapped)."""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..preprocess import ImageSource, describe_source

# one bundled scalable font and one wrapper for every picture
from ..runtime.explain_pictures import font, save_picture, wrap_text

if TYPE_CHECKING:
    from PIL import ImageFont

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
        data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else Path(source).read_bytes()
        image = Image.open(io.BytesIO(data))
    return ImageOps.pad(image.convert("RGB"), (size, size), color=(255, 255, 255))


def _data_uri(image) -> str:
    image.save(buf := io.BytesIO(), format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


CORRECT, WRONG = (34, 150, 34), (210, 40, 40)


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _query_name(q: QueryResult) -> str:
    return q.label or describe_source(q.sketch).replace(os.sep, "/").rsplit("/", 1)[-1]


def _hit_name(hit, labels: Mapping[str, str]) -> str:
    """The hit's class where known, else its file name."""
    return labels.get(hit.id) or str(hit.id).replace(os.sep, "/").rsplit("/", 1)[-1]


def _verdict(q: QueryResult, hit, labels: Mapping[str, str]) -> bool | None:
    """True/False where the query's and the hit's classes are known, else None (no frame)."""
    hit_label = labels.get(hit.id)
    return None if q.label is None or hit_label is None else hit_label == q.label


def _summary(results: Sequence[QueryResult], labels: Mapping[str, str]) -> tuple[int, int, int, list[tuple[str, str]]]:
    """(columns, correct hits, labelled hits, legend entries (kind, text) of the frames drawn and the scores shown)."""
    verdicts = [v for q in results for h in q.hits if (v := _verdict(q, h, labels)) is not None]
    correct, known = sum(verdicts), len(verdicts)
    cols = 1 + max((len(q.hits) for q in results), default=0)
    stages = {h.stage for q in results for h in q.hits}
    framed = bool(known)
    items = (
        [("correct", "green frame: the hit has the query's class"), ("wrong", "red frame: the hit has another class")]
        if framed
        else [("", "no frames: the classes of the query or the hits are not known")]
    )
    items.append(("", "under each hit: its rank, its score and its class" + ("" if framed else " or file name")))
    if 2 in stages:
        items.append(("", "reranked score (0..1): stage 2, the relation head reranked this hit"))
    if 1 in stages:
        items.append(("", "ret-token cosine (-1..1): stage 1 only, below the reranked depth"))
    return cols, correct, known, items


def write_results_page(
    path: str | os.PathLike,
    results: Sequence[QueryResult],
    labels: Mapping[str, str] | None = None,
    title: str = "zse-infer results",
    subtitle: str = "",
) -> Path:
    """Write the HTML page. ``labels`` maps gallery ids to classes (frames correct/wrong hits). Each query is a row
    of a CSS grid whose columns shrink with the window (``minmax(0, ...)``): any number of hits fits its width."""
    labels = labels or {}
    cols, correct, known, legend_items = _summary(results, labels)
    cells = ['<div class="head">query</div>'] + [f'<div class="head">#{i}</div>' for i in range(1, cols)]
    for q in results:
        cells.append(
            f'<div class="cell query"><img src="{_data_uri(_thumbnail(q.sketch))}" alt="query">'
            f'<div class="label">{html.escape(_query_name(q))}</div></div>'
        )
        for h in q.hits:
            verdict = _verdict(q, h, labels)
            css = {True: "cell hit correct", False: "cell hit wrong", None: "cell hit"}[verdict]
            mark = {True: " &#10003;", False: " &#10007;", None: ""}[verdict]
            cells.append(
                f'<div class="{css}"><img src="{_data_uri(_thumbnail(h.path))}" alt="{html.escape(h.id)}">'
                f"<div>#{h.rank} {h.score:.3f}{mark}</div>"
                f'<div class="small label">{html.escape(_hit_name(h, labels))}</div>'
                f'<div class="small">{"reranked score" if h.stage == 2 else "ret-token cosine"}</div></div>'
            )
        cells += ['<div class="cell"></div>'] * (cols - 1 - len(q.hits))  # short rows keep the grid aligned
    summary = f"{correct} of {known} labelled hits have the query's class." if known else ""
    legend = "".join(
        f'<li><span class="swatch {kind}"></span>{html.escape(text)}</li>' if kind else f"<li>{html.escape(text)}</li>"
        for kind, text in legend_items
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; }}
p {{ overflow-wrap: anywhere; }}
.results {{ display: grid; grid-template-columns: repeat({cols}, minmax(0, {THUMB + 14}px)); gap: 6px; }}
.head {{ font-size: 12px; color: #444; font-weight: bold; text-align: center; align-self: end; }}
.cell {{ text-align: center; font-size: 12px; padding: 4px; border: 3px solid transparent; min-width: 0; }}
.cell.query {{ background: #eef; }}
.cell.correct, .swatch.correct {{ border-color: {_hex(CORRECT)}; }}
.cell.wrong, .swatch.wrong {{ border-color: {_hex(WRONG)}; }}
.swatch {{ display: inline-block; width: 14px; height: 14px; border: 3px solid; margin-right: 6px;
  vertical-align: middle; }}
.label {{ overflow-wrap: anywhere; }}
.small {{ color: #555; font-size: 11px; overflow-wrap: anywhere; }}
.cell img {{ width: 100%; max-width: {THUMB}px; height: auto; aspect-ratio: 1; display: block; margin: 0 auto; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{f"<p>{html.escape(subtitle)}</p>" if subtitle else ""}<p>{html.escape(summary)}</p>
<ul class="legend">{legend}</ul>
<div class="results">{"".join(cells)}</div></body></html>
"""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out


def write_results_grid(
    path: str | os.PathLike,
    results: Sequence[QueryResult],
    labels: Mapping[str, str] | None = None,
    title: str = "zse-infer results",
    subtitle: str = "",
) -> Path:
    """The same content as a PNG: title, legend, column headers, one row per query with every label whole."""
    from PIL import Image, ImageDraw

    labels = labels or {}
    cols, correct, known, legend = _summary(results, labels)
    cell, pad, frame, line_h = THUMB, 12, 3, 15
    small, normal, big = font(12), font(13), font(20)
    width = cols * (cell + pad) + pad

    def cell_lines(q: QueryResult, h=None) -> list[tuple[str, ImageFont.BaseImageFont]]:
        if h is None:
            return [(t, normal) for t in wrap_text(_query_name(q), normal, cell)]
        names = wrap_text(_hit_name(h, labels), small, cell)
        return [(f"#{h.rank}  {h.score:.3f}", normal), *((t, small) for t in names)]

    texts = [[cell_lines(q)] + [cell_lines(q, h) for h in q.hits] for q in results]
    row_h = [cell + 6 + line_h * max(len(t) for t in row) + pad for row in texts]
    intro = [(title, big, (0, 0, 0))]
    intro += [(t, normal, (40, 40, 40)) for t in wrap_text(subtitle, normal, width - 2 * pad)] if subtitle else []
    if known:
        intro.append((f"{correct} of {known} labelled hits have the query's class.", normal, (40, 40, 40)))
    top = pad + 28 + line_h * (len(intro) - 1) + 8 + 20 * len(legend) + 8 + 18
    canvas = Image.new("RGB", (width, top + sum(row_h) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    y = pad
    for i, (text, face, fill) in enumerate(intro):
        draw.text((pad, y), text, font=face, fill=fill)
        y += 28 if i == 0 else line_h
    y += 8
    for kind, text in legend:
        x = pad
        if kind:
            draw.rectangle([x, y + 1, x + 14, y + 15], outline=CORRECT if kind == "correct" else WRONG, width=frame)
            x += 22
        draw.text((x, y + 1), text, font=normal, fill=(40, 40, 40))
        y += 20
    y += 8
    draw.text((pad, y), "query", font=normal, fill=(80, 80, 80))
    for c in range(1, cols):
        draw.text((pad + c * (cell + pad), y), f"hit #{c}", font=normal, fill=(80, 80, 80))
    y = top
    for q, row, h_row in zip(results, texts, row_h, strict=True):
        canvas.paste(_thumbnail(q.sketch, cell), (pad, y))
        for c, lines in enumerate(row):
            x = pad + c * (cell + pad)
            if c:
                hit = q.hits[c - 1]
                canvas.paste(_thumbnail(hit.path, cell), (x, y))
                verdict = _verdict(q, hit, labels)
                if verdict is not None:
                    box = [x - frame, y - frame, x + cell + frame - 1, y + cell + frame - 1]
                    draw.rectangle(box, outline=CORRECT if verdict else WRONG, width=frame)
            for i, (text, face) in enumerate(lines):
                draw.text((x, y + cell + 6 + i * line_h), text, font=face, fill=(0, 0, 0) if i == 0 else (70, 70, 70))
        y += h_row
    return save_picture(canvas, path)
