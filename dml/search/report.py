"""``report.html``: a static page of a search that an investigator can open anywhere and hand on.

One self-contained file: no script, no network request (no external style sheet, font or image), every picture a
small JPEG thumbnail embedded as a ``data:`` URI (longest side :data:`THUMBNAIL` pixels, quality 70), so the page
of 10 queries × 10 matches weighs a few hundred kilobytes, not the originals' megabytes. For each query: its
thumbnail, then its top matches (rank, label, the extra columns such as the chain, cosine similarity), and how
the ranking was made (exact, or approximate with its measured recall) and by which model (provenance header).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from PIL import Image

from dml.search.query import SearchResult
from dml.utils import atomic_write

THUMBNAIL = 128
SHOWN = 10

_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 4px}.meta{font-size:12px;color:#555;margin-bottom:18px}
.query{display:flex;gap:16px;align-items:flex-start;padding:12px 0;border-top:1px solid #ddd}
.card{width:136px;font-size:11px;line-height:1.3;text-align:center;word-break:break-all}
.card img{width:128px;height:128px;object-fit:contain;background:#eee;border:2px solid transparent}
.card.q img{border-color:#1f77b4}.matches{display:flex;flex-wrap:wrap;gap:8px}
.score{font-weight:600}.skipped{color:#a00;font-size:12px}
"""


def thumbnail(path: str | Path, size: int = THUMBNAIL) -> str:
    """A ``data:image/jpeg;base64,…`` URI of the image at ``path`` shrunk to at most ``size`` pixels a side."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((size, size))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _card(uri: str, lines: list[str], cls: str = "card") -> str:
    text = "<br>".join(lines)
    return f'<div class="{cls}"><img alt="" src="{uri}"><br>{text}</div>'


def write_report(result: SearchResult, record: dict[str, Any], path: Path, *, shown: int = SHOWN) -> None:
    """Write the report of ``result`` (its ``results.json`` ``record``) to ``path``, ``shown`` matches a query."""
    e = html.escape
    model, index = record["model"], record["index"]
    how = record["search"]
    if index["approximate"]:
        how += f", recall@{index['approximate']['k']} vs exact {index['approximate']['recall']:.3f}"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>dml search report</title>",
        f"<style>{_STYLE}</style></head><body><h1>Search report: {len(record['queries'])} queries, top "
        f"{min(shown, record['top_k'])} of {index['count']} gallery images</h1>",
        f"<div class='meta'>Model {e(model['fingerprint'][:23])}… (run {e(model['run'])}, epoch {model['epoch']}); "
        f"index {e(index['folder'])} of {e(index['images'])}; search {e(how)}; cosine similarity; "
        f"{e(record['provenance']['date'])}, commit {e(str(record['provenance']['commit']))}.</div>",
    ]
    for query in record["queries"]:
        cards = []
        for match in query["matches"][:shown]:
            extra = [
                f"{k} {e(str(v))}" for k, v in match.items() if k not in ("rank", "score", "row", "id", "path", "label")
            ]
            cards.append(
                _card(
                    thumbnail(match["path"]),
                    [
                        f"#{match['rank']} <span class='score'>{match['score']:.3f}</span>",
                        f"label {e(match['label'] or '-')}",
                        *extra,
                        e(Path(match["path"]).name),
                    ],
                )
            )
        query_card = _card(thumbnail(query["path"]), ["query", e(Path(query["path"]).name)], "card q")
        parts.append(f"<div class='query'>{query_card}<div class='matches'>{''.join(cards)}</div></div>")
    if record["skipped"]:
        listed = "".join(f"<li>{e(s['path'])}: {e(s['reason'])}</li>" for s in record["skipped"])
        parts.append(f"<div class='skipped'>Skipped (unreadable) query images:<ul>{listed}</ul></div>")
    parts.append("</body></html>")
    with atomic_write(path, "w") as handle:
        handle.write("\n".join(parts))
