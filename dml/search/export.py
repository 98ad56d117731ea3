"""What a search hands on: ``results.csv`` for scoring, ``results.json`` with provenance, and the HTML report.

``results.csv`` is the input of the released Hotels-50K evaluation (GWUvision/Hotels-50K ``evaluate/retrieval.py``
at commit 3614e4a51664e22a3a109b873b8d1eb40eca8beb, read here by :func:`dml.eval.hotels.read_result_csv`): no
header, one row per query, ``query_id, result_id_1, ..., result_id_k`` (``k = 100`` by default), best first. The
ids are the images' integer ids (Hotels-50K's ``image_id``, the file name) when every file name is a distinct
integer, else row numbers (of the queries, and of the index's ``items.csv``), so the released scoring applies to a
Hotels-50K search as it is, and any other search maps back through ``results.json``.

``results.json``: every query with its ranked matches (row, id, path, label, score, and the extra columns such as
``chain``), the files skipped, and the provenance: the model (fingerprint, run, checkpoint SHA-256, epoch), the index
(folder, size, search kind and measured recall), the date, the commit and the hardware (:func:`dml.utils.run_info`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from dml.search.query import SearchResult, describe
from dml.utils import atomic_save_json, atomic_write, run_info


def write_results_csv(result: SearchResult, path: Path) -> None:
    """``query_id, result ids…`` per query, no header (the released Hotels-50K evaluation's input)."""
    ids = result.index.items.ids
    with atomic_write(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        for query, rows in zip(result.queries.ids, result.rows):
            writer.writerow([query, *(ids[int(r)] for r in rows)])


def results_record(result: SearchResult) -> dict[str, Any]:
    """The content of ``results.json`` (module docstring)."""
    m = result.index.manifest
    queries = []
    for q in range(len(result.queries)):
        matches = [
            {"rank": rank + 1, "score": float(score), **describe(result, int(row))}
            for rank, (score, row) in enumerate(zip(result.scores[q], result.rows[q]))
            if row >= 0
        ]
        queries.append({"id": int(result.queries.ids[q]), "path": str(result.queries.paths[q]), "matches": matches})
    return {
        "top_k": result.top_k,
        "search": "exact" if result.exact else f"approximate ({m['approximate']['kind']})",
        "region": None if result.region is None else list(result.region),
        "score": "cosine similarity" if result.region is None else "similarity carried by the region, s_R",
        "queries": queries,
        "skipped": result.skipped,
        "model": {
            "fingerprint": result.run.fingerprint,
            "run": str(result.run.folder),
            "checkpoint_sha256": result.run.sha256,
            "epoch": result.run.epoch,
        },
        "index": {
            "folder": str(result.index.folder.resolve()),
            "count": m["count"],
            "dtype": m["dtype"],
            "images": m["images"],
            "approximate": m["approximate"],
            "created": m["created"]["date"],
        },
        "provenance": run_info(),
    }


def export(result: SearchResult, out: str | Path, *, report: bool = True, **report_options: Any) -> dict[str, Path]:
    """Write ``results.csv``, ``results.json`` and (``report=True``) ``report.html`` into ``out``."""
    from dml.search.report import write_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {"csv": out / "results.csv", "json": out / "results.json"}
    write_results_csv(result, written["csv"])
    record = results_record(result)
    atomic_save_json(record, written["json"])
    if report:
        written["report"] = out / "report.html"
        write_report(result, record, written["report"], **report_options)
    return written
