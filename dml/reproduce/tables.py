"""Tables every reproduction page shows: the published numbers next to the recorded ones, and run summaries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from dml.reproduce.experiment import Experiment
from dml.train.config import ConfigError


def published_tables(experiment: Experiment, dataset: str | None = None) -> list[dict[str, Any]]:
    """The tables of ``published.yaml`` (all, or those of ``dataset``): dicts with ``title``, ``dataset``,
    ``source`` (the provenance tag), ``columns``, ``rows`` (``{method: [values]}``) and an optional ``note``."""
    path = experiment.folder / "published.yaml"
    if not path.is_file():
        return []
    tables = (yaml.safe_load(path.read_text()) or {}).get("tables", [])
    for table in tables:
        missing = {"title", "dataset", "source", "columns", "rows"} - set(table)
        if missing:
            raise ConfigError(f"{path}: table {table.get('title', '?')!r} lacks {sorted(missing)}.")
        for method, row in table["rows"].items():
            if len(row) != len(table["columns"]):
                raise ConfigError(
                    f"{path}: table {table['title']!r}, row {method!r} has {len(row)} values for "
                    f"{len(table['columns'])} columns."
                )
    return [t for t in tables if dataset is None or t["dataset"] == dataset]


def comparison_table(
    experiment: Experiment, dataset: str, *, recorded: Mapping[str, Any] | None = None, columns: Mapping[str, str]
) -> Any:
    """A pandas DataFrame of R@K-style numbers, one row per (source, method): every published table of
    ``dataset`` that has at least one of ``columns``' labels (the others show "–"), then this suite's
    ``recorded`` full run (if any).

    ``columns`` maps a table column label (``"R@1"``) to the recorded metric (``"recall@1"``); recorded values are
    shown in percent as ``mean ± std``, like the released README.
    """
    import pandas as pd

    rows = []
    for table in published_tables(experiment, dataset):
        if not set(table["columns"]) & set(columns):
            continue
        for method, values in table["rows"].items():
            cells = dict(zip(table["columns"], values))
            rows.append(
                {
                    "source": f"{table['title']} [{table['source']}]",
                    "method": method,
                    **{label: cells.get(label, "–") for label in columns},
                }
            )
    if recorded is not None:
        info = recorded.get("run_info", {})
        gpus = ", ".join(info.get("hardware", {}).get("gpus", [])) or "no GPU recorded"
        source = (
            f"this suite, {str(info.get('date', '?'))[:10]}, commit {str(info.get('commit'))[:10]}, {gpus}, "
            f"seeds {info.get('seeds')}"
        )
        for method, metrics in recorded["summary"].items():
            rows.append(
                {
                    "source": source,
                    "method": method,
                    **{label: _pm(metrics.get(metric)) for label, metric in columns.items()},
                }
            )
    return pd.DataFrame(rows, columns=["source", "method", *columns])


def _pm(summary: Mapping[str, Any] | None) -> str:
    if not summary:
        return "–"
    return f"{100 * summary['mean']:.2f} ± {100 * summary['std']:.2f}"


def summary_table(summary: Mapping[str, Mapping[str, Mapping[str, Any]]], *, digits: int = 3) -> Any:
    """A pandas DataFrame of :func:`~dml.reproduce.summarize` output, one row per method: ``mean ± std`` over the
    seeds, or the bare mean when a method has a single seed (whose population std is always 0)."""
    import pandas as pd

    def cell(values: Mapping[str, Any]) -> str:
        if len(values["values"]) == 1:
            return f"{values['mean']:.{digits}f}"
        return f"{values['mean']:.{digits}f} ± {values['std']:.{digits}f}"

    return pd.DataFrame({method: {metric: cell(v) for metric, v in per.items()} for method, per in summary.items()}).T
