"""The diagnostics' argument checks, now in :mod:`dml.utils.checks` (re-exported here for existing imports)."""

from dml.utils.checks import as_float64_matrix, as_label_array, check_positive_int, unit_rows

__all__ = ["as_float64_matrix", "as_label_array", "check_positive_int", "unit_rows"]
