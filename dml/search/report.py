"""``report.html``: a static page of a search that an investigator can open anywhere and hand on.

One self-contained file: no script, no network request (no external style sheet, font or image), every picture a
small JPEG thumbnail embedded as a ``data:`` URI (longest side :data:`THUMBNAIL` pixels, quality 70), so the page
of 10 queries × 10 matches weighs a few hundred kilobytes, not the originals' megabytes. For each query: its
thumbnail, then its top matches (rank, label, the extra columns such as the chain, cosine similarity), and how
the ranking was made (exact, or approximate with its measured recall) and by which model (provenance header).
Under every match, the pair's spatial similarity maps (:mod:`dml.search.explain`): where on the query and where on
the match the similarity comes from; a region query's region is outlined on the query.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from dml.search.query import SearchResult
from dml.utils import atomic_write

THUMBNAIL = 128
HEAT = 64
SHOWN = 10
HEAT_NOTE = (
    "Under each match: where the similarity comes from, on the query (left) and on the match (right), over the "
    "centre crop the model saw; red cells raise the similarity, blue cells lower it (one colour scale per pair). "
    "Each map sums to the pair's cosine similarity (Stylianou, Souvenir and Pless, WACV 2019)."
)

_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 4px}.meta{font-size:12px;color:#555;margin-bottom:18px}
.query{display:flex;gap:16px;align-items:flex-start;padding:12px 0;border-top:1px solid #ddd}
.card{width:136px;font-size:11px;line-height:1.3;text-align:center;word-break:break-all}
.card img{width:128px;height:128px;object-fit:contain;background:#eee;border:2px solid transparent}
.card.q img{border-color:#1f77b4}.matches{display:flex;flex-wrap:wrap;gap:8px}
.score{font-weight:600}.skipped{color:#a00;font-size:12px}
.heat{display:flex;gap:4px;justify-content:center;margin-top:2px}.heat img{width:64px;height:64px;border:0}
"""


def thumbnail(path: str | Path, size: int = THUMBNAIL, *, box: Any = None) -> str:
    """A ``data:image/jpeg;base64,…`` URI of the image at ``path`` shrunk to at most ``size`` pixels a side, with
    ``box`` (x0, y0, x1, y1 in the file's pixels) outlined when given."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        if box is not None:
            width = max(1, round(max(image.size) / 64))
            ImageDraw.Draw(image).rectangle(tuple(box), outline=(255, 200, 0), width=width)
        image.thumbnail((size, size))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _card(uri: str, lines: list[str], cls: str = "card", *, heat: str = "") -> str:
    text = "<br>".join(lines)
    return f'<div class="{cls}"><img alt="" src="{uri}">{heat}<br>{text}</div>'


def _heat_cards(result: SearchResult, query: dict[str, Any], shown: int) -> list[str]:
    """For each shown match, the pair's two heat maps (on the query, on the match), one colour scale per pair."""
    from dml.search.explain import display_image, heat_overlay, model_input, pair_maps

    pre, model = result.index.preprocessing, result.run.model
    q = model_input(pre, query["path"])
    inputs = [model_input(pre, m["path"]) for m in query["matches"][:shown]]
    if not inputs:
        return []
    map_q, map_m, _ = pair_maps(model, q, torch.cat(inputs))
    shown_q = display_image(pre, q)
    cards = []
    for i, x in enumerate(inputs):
        vmax = max(np.abs(map_q[i]).max(), np.abs(map_m[i]).max())
        cards.append(
            f'<div class="heat"><img alt="" src="{heat_overlay(shown_q, map_q[i], vmax, size=HEAT)}">'
            f'<img alt="" src="{heat_overlay(display_image(pre, x), map_m[i], vmax, size=HEAT)}"></div>'
        )
    return cards


def write_report(
    result: SearchResult, record: dict[str, Any], path: Path, *, shown: int = SHOWN, heat_maps: bool = True
) -> None:
    """Write the report of ``result`` (its ``results.json`` ``record``) to ``path``, ``shown`` matches a query,
    with the pairs' similarity heat maps (:mod:`dml.search.explain`) unless ``heat_maps=False`` or the model's head
    cannot be decomposed (the page then says so)."""
    e = html.escape
    model, index = record["model"], record["index"]
    how = record["search"]
    if index["approximate"]:
        how += f", recall@{index['approximate']['k']} vs exact {index['approximate']['recall']:.3f}"
    region = record.get("region")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>dml search report</title>",
        f"<style>{_STYLE}</style></head><body><h1>Search report: {len(record['queries'])} queries, top "
        f"{min(shown, record['top_k'])} of {index['count']} gallery images</h1>",
        f"<div class='meta'>Model {e(model['fingerprint'][:23])}… (run {e(model['run'])}, epoch {model['epoch']}); "
        f"index {e(index['folder'])} of {e(index['images'])}; search {e(how)}; score: {e(record['score'])}"
        f"{f' of region {region} (outlined)' if region else ''}; {e(record['provenance']['date'])}, commit "
        f"{e(str(record['provenance']['commit']))}.</div>",
    ]
    note = HEAT_NOTE
    for query in record["queries"]:
        heat: list[str] = []
        if heat_maps:
            try:
                heat = _heat_cards(result, query, shown)
            except ValueError as error:  # a head the decomposition does not support
                heat_maps, note = False, f"No heat maps: {e(str(error))}"
        cards = []
        for i, match in enumerate(query["matches"][:shown]):
            extra = [
                f"{k} {e(str(v))}" for k, v in match.items() if k not in ("rank", "score", "row", "id", "path", "label")
            ]
            lines = [
                f"#{match['rank']} <span class='score'>{match['score']:.3f}</span>",
                f"label {e(match['label'] or '-')}",
                *extra,
                e(Path(match["path"]).name),
            ]
            cards.append(_card(thumbnail(match["path"]), lines, heat=heat[i] if heat else ""))
        query_card = _card(thumbnail(query["path"], box=region), ["query", e(Path(query["path"]).name)], "card q")
        parts.append(f"<div class='query'>{query_card}<div class='matches'>{''.join(cards)}</div></div>")
    parts.insert(3, f"<div class='meta'>{note}</div>")
    if record["skipped"]:
        listed = "".join(f"<li>{e(s['path'])}: {e(s['reason'])}</li>" for s in record["skipped"])
        parts.append(f"<div class='skipped'>Skipped (unreadable) query images:<ul>{listed}</ul></div>")
    parts.append("</body></html>")
    with atomic_write(path, "w") as handle:
        handle.write("\n".join(parts))
