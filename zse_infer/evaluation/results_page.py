"""A results page: each query sketch with its top hits and scores; correct hits marked.

One self-contained HTML file (thumbnails inlined as base64 PNG, no external
assets), and optionally the same as a PNG grid for places that show images.
Both carry a title, a legend that describes only what is drawn (class frames
appear only where the query's and the hit's classes are known) and every
label whole (wrapped, never cut).
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..preprocess import ImageSource, describe_source
from ..runtime.explain_pictures import font  # one bundled scalable font for every picture

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


CORRECT, WRONG = (34, 150, 34), (210, 40, 40)


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#%02x%02x%02x" % rgb


def _stage(hit) -> str:
    return "relation score" if hit.stage == 2 else "ret-token cosine"


def _query_name(q: QueryResult) -> str:
    return q.label or describe_source(q.sketch).replace(os.sep, "/").rsplit("/", 1)[-1]


def _hit_name(hit, labels: Mapping[str, str]) -> str:
    """The hit's class where known, else its file name."""
    return labels.get(hit.id) or str(hit.id).replace(os.sep, "/").rsplit("/", 1)[-1]


def _verdict(q: QueryResult, hit, labels: Mapping[str, str]) -> bool | None:
    """True/False where the query's and the hit's classes are known, else None (no frame)."""
    hit_label = labels.get(hit.id)
    return None if q.label is None or hit_label is None else hit_label == q.label


def _counts(results: Sequence[QueryResult], labels: Mapping[str, str]) -> tuple[int, int]:
    verdicts = [_verdict(q, h, labels) for q in results for h in q.hits]
    known = [v for v in verdicts if v is not None]
    return sum(known), len(known)


def _legend_items(framed: bool, stages: set[int]) -> list[tuple[str, str]]:
    """(kind, text) entries: the frames only when frames are drawn, the score kinds that occur."""
    items = []
    if framed:
        items += [("correct", "green frame: the hit has the query's class"), ("wrong", "red frame: the hit has another class")]
    else:
        items.append(("", "no frames: the classes of the query or the hits are not known"))
    items.append(("", "under each hit: its rank, its score and its class" + ("" if framed else " or file name")))
    if 2 in stages:
        items.append(("", "relation score (0..1): stage 2, the relation head reranked this hit"))
    if 1 in stages:
        items.append(("", "ret-token cosine (-1..1): stage 1 only, below the reranked depth"))
    return items


def write_results_page(
    path: str | os.PathLike, results: Sequence[QueryResult], labels: Mapping[str, str] | None = None,
    title: str = "zse-infer results", subtitle: str = "",
) -> Path:
    """Write the HTML page. ``labels`` maps gallery ids to classes (frames correct/wrong hits)."""
    labels = labels or {}
    rows = []
    for q in results:
        cells = [
            f'<td class="query"><img src="{_data_uri(_thumbnail(q.sketch))}" alt="query">'
            f"<div class=\"label\">{html.escape(_query_name(q))}</div></td>"
        ]
        for h in q.hits:
            verdict = _verdict(q, h, labels)
            css = {True: "hit correct", False: "hit wrong", None: "hit"}[verdict]
            mark = {True: " &#10003;", False: " &#10007;", None: ""}[verdict]
            cells.append(
                f'<td class="{css}"><img src="{_data_uri(_thumbnail(h.path))}" alt="{html.escape(h.id)}">'
                f'<div>#{h.rank} {h.score:.3f}{mark}</div><div class="small label">{html.escape(_hit_name(h, labels))}</div>'
                f'<div class="small">{_stage(h)}</div></td>'
            )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    correct, known = _counts(results, labels)
    summary = f"{correct} of {known} labelled hits have the query's class." if known else ""
    stages = {h.stage for q in results for h in q.hits}
    legend = "".join(
        f'<li><span class="swatch {kind}"></span>{html.escape(text)}</li>' if kind else f"<li>{html.escape(text)}</li>"
        for kind, text in _legend_items(bool(known), stages)
    )
    header = "<tr><th>query</th>" + "".join(f"<th>#{i}</th>" for i in range(1, max((len(q.hits) for q in results), default=0) + 1)) + "</tr>"
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; }}
table {{ border-collapse: separate; border-spacing: 6px; }}
th {{ font-size: 12px; color: #444; }}
td {{ text-align: center; vertical-align: top; font-size: 12px; padding: 4px; border: 3px solid transparent; width: {THUMB}px; }}
td.query {{ background: #eef; }}
td.correct, .swatch.correct {{ border-color: {_hex(CORRECT)}; }}
td.wrong, .swatch.wrong {{ border-color: {_hex(WRONG)}; }}
.swatch {{ display: inline-block; width: 14px; height: 14px; border: 3px solid; margin-right: 6px; vertical-align: middle; }}
.label {{ overflow-wrap: anywhere; }}
.small {{ color: #555; font-size: 11px; }}
img {{ width: {THUMB}px; height: {THUMB}px; display: block; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{f"<p>{html.escape(subtitle)}</p>" if subtitle else ""}<p>{html.escape(summary)}</p>
<ul class="legend">{legend}</ul>
<table>{header}{''.join(rows)}</table></body></html>
"""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out


def _wrap(text: str, face, width: int) -> list[str]:
    """Lines of ``text`` no wider than ``width`` pixels, nothing dropped: breaks between words, after a
    '/' ("automobile/taxi/police"), and inside a word only where the word alone is wider than a line."""
    pieces: list[tuple[str, str]] = []  # (piece, what joins it to the previous piece)
    for word in text.split():
        for i, piece in enumerate(re.findall(r"[^/]*/|[^/]+", word)):
            pieces.append((piece, "" if i else " "))
    lines: list[str] = []
    for piece, joint in pieces:
        while face.getlength(piece) > width:  # wider than a line by itself: split it
            cut = 1
            while face.getlength(piece[: cut + 1]) <= width:
                cut += 1
            lines.append(piece[:cut])
            piece, joint = piece[cut:], ""
        if lines and face.getlength(lines[-1] + joint + piece) <= width:
            lines[-1] += joint + piece
        elif piece:
            lines.append(piece)
    return lines


def write_results_grid(
    path: str | os.PathLike, results: Sequence[QueryResult], labels: Mapping[str, str] | None = None,
    title: str = "zse-infer results", subtitle: str = "",
) -> Path:
    """The same content as a PNG: title, legend, column headers, one row per query with every label whole."""
    from PIL import Image, ImageDraw

    labels = labels or {}
    cols = 1 + max((len(q.hits) for q in results), default=0)
    cell, pad, frame = THUMB, 12, 3
    small, normal, big = font(12), font(13), font(20)
    line_h = 15
    width = cols * (cell + pad) + pad
    correct, known = _counts(results, labels)
    stages = {h.stage for q in results for h in q.hits}

    def cell_lines(q: QueryResult, h=None) -> list[tuple[str, object]]:
        if h is None:
            return [(t, normal) for t in _wrap(_query_name(q), normal, cell)]
        out = [(f"#{h.rank}  {h.score:.3f}", normal)]
        out += [(t, small) for t in _wrap(_hit_name(h, labels), small, cell)]
        return out

    texts = [[cell_lines(q)] + [cell_lines(q, h) for h in q.hits] for q in results]
    row_h = [cell + 6 + line_h * max(len(t) for t in row) + pad for row in texts]
    intro = [(title, big, (0, 0, 0))]
    intro += [(t, normal, (40, 40, 40)) for t in _wrap(subtitle, normal, width - 2 * pad)] if subtitle else []
    if known:
        intro.append((f"{correct} of {known} labelled hits have the query's class.", normal, (40, 40, 40)))
    legend = _legend_items(bool(known), stages)
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
    for q, row, h_row in zip(results, texts, row_h):
        canvas.paste(_thumbnail(q.sketch, cell), (pad, y))
        for c, lines in enumerate(row):
            x = pad + c * (cell + pad)
            if c:
                hit = q.hits[c - 1]
                canvas.paste(_thumbnail(hit.path, cell), (x, y))
                verdict = _verdict(q, hit, labels)
                if verdict is not None:
                    draw.rectangle([x - frame, y - frame, x + cell + frame - 1, y + cell + frame - 1],
                                   outline=CORRECT if verdict else WRONG, width=frame)
            for i, (text, face) in enumerate(lines):
                draw.text((x, y + cell + 6 + i * line_h), text, font=face, fill=(0, 0, 0) if i == 0 else (70, 70, 70))
        y += h_row
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
