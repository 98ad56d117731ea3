"""``benchmarks/bench_search.py`` at a tiny scale: both sides run in their children and the table is complete."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_search.py"


def _module():
    spec = importlib.util.spec_from_file_location("bench_search", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_the_benchmark_runs_at_tiny_scale(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bench = _module()
    result = bench.main(["--scale", "0.002", "--kind", kind, "--json", str(tmp_path / "out.json")])
    assert result["gallery"] == 2056 and result["queries"] == 36 and result["approximate"]["kind"] == kind
    assert 0.5 < result["recall@100"] <= 1.0 and result["under_limit"]
    assert result["exact"]["query"] > 0 and result["approximate"]["build"] > 0
    out = capsys.readouterr().out
    assert f"| | exact (chunked ranking) | faiss {kind} | exact / faiss |" in out
    assert out.count("\n|") == 7 and "under the 4 GiB limit" in out
    assert (tmp_path / "out.json").is_file()


def test_the_table_puts_the_ratio_beside_both_sides() -> None:
    bench = _module()
    exact = {"build": 0.0, "query": 10.0, "peak_rss": 2 * 2**30}
    approx = {"build": 4.0, "query": 1.0, "peak_rss": 2**30, "kind": "ivf"}
    lines = bench.table(exact, approx, 0.9).splitlines()
    assert lines[2] == "| index build (s) | 0.0 | 4.0 | - |"
    assert lines[3] == "| top-100 of all queries (s) | 10.0 | 1.0 | 10.00 |"
    assert lines[5] == "| peak RSS (MiB) | 2,048.0 | 1,024.0 | 2.00 |"
    assert lines[6] == "| recall@100 vs exact | 1.0000 | 0.9000 | 1.11 |"
