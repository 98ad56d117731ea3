"""Shared pytest configuration."""

from __future__ import annotations

import os

import pytest

# Pin the CPU code paths of the numerical libraries to AVX2 before any of them is imported, here and in the kernels
# papermill starts (they inherit this environment): a short training run amplifies rounding differences, and the
# default dispatch (each CPU's widest instructions) gave a different smoke run of the same seed on another machine.
# Every x86-64 CPU of the last decade has AVX2, so these values reproduce one run everywhere at full speed.
# The Makefile exports the same values for `make test` and `make book`.
CPU_NUMERICS = {
    "ATEN_CPU_CAPABILITY": "avx2",  # PyTorch's own vectorised kernels
    "MKL_CBWR": "AVX2",  # MKL (PyTorch's BLAS): conditional numerical reproducibility
    "DNNL_MAX_CPU_ISA": "AVX2",  # oneDNN (PyTorch's convolutions)
    "OPENBLAS_CORETYPE": "Haswell",  # OpenBLAS of NumPy and SciPy
    "FAISS_OPT_LEVEL": "avx2",  # faiss's SIMD variant
}
for _name, _value in CPU_NUMERICS.items():
    os.environ.setdefault(_name, _value)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-baselines",
        action="store_true",
        default=False,
        help="rewrite tests/baselines/<page>.json from this run's numbers (review the diff before committing)",
    )
