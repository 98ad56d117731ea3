"""Retrieval a person can use: a trained run on their own images, an index, a search, an exportable result.

* :func:`evaluate_run` (``dml eval``): a saved run's metrics under its dataset's protocol (:mod:`dml.search.run`);
* :func:`build_index` / :func:`open_index` (``dml index``): a gallery embedded with the run's model and
  preprocessing, exact or faiss-approximate search (:mod:`dml.search.index`, :mod:`dml.search.approximate`);
* :func:`search` and :func:`export` (``dml search``): top-k matches per query, ``results.csv`` in the released
  Hotels-50K evaluation format, ``results.json`` with provenance and a self-contained ``report.html``
  (:mod:`dml.search.query`, :mod:`dml.search.export`, :mod:`dml.search.report`).
"""

from dml.search.export import export, results_record, write_results_csv
from dml.search.images import UnknownImageFormatError, gallery_items, query_items
from dml.search.index import IncompleteIndexError, Index, IndexMismatchError, build_index, open_index
from dml.search.preprocess import Preprocessing
from dml.search.query import SearchResult, search
from dml.search.run import SavedRun, evaluate_run, model_fingerprint, open_run

__all__ = [
    "IncompleteIndexError",
    "Index",
    "IndexMismatchError",
    "Preprocessing",
    "SavedRun",
    "SearchResult",
    "UnknownImageFormatError",
    "build_index",
    "evaluate_run",
    "export",
    "gallery_items",
    "model_fingerprint",
    "open_index",
    "open_run",
    "query_items",
    "results_record",
    "search",
    "write_results_csv",
]
