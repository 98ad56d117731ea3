# The README's two commands: `make book` and `make test`. Both create the virtual environment on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# One CPU code path for the numerical libraries, so that a seed gives the same smoke run on every machine (see
# tests/conftest.py, which sets the same values when pytest is run directly).
export ATEN_CPU_CAPABILITY ?= avx2
export MKL_CBWR ?= AVX2
export DNNL_MAX_CPU_ISA ?= AVX2
export OPENBLAS_CORETYPE ?= Haswell
export FAISS_OPT_LEVEL ?= avx2

.PHONY: book test unit lint setup baselines bench twins clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -e ".[book,test,dev]"
	touch $(STAMP)

# Build the course on built-in data (profile "smoke"); warnings are errors. A page whose notebook `make test` executed
# from the current files is built from that notebook; every other page is executed here (tests/pages.py).
# The staged source tree is _build/stage; the HTML is _build/html, as with `jupyter-book build .`.
book: $(STAMP)
	$(BIN)/python -m tests.pages --stage-book
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/jupyter-book build _build/stage --path-output . -W --keep-going

# Unit tests plus the papermill regression run of every book page and notebook.
test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest

# Unit tests only: everything but the papermill runs of the pages.
unit: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -m "not notebook"

# Lint and formatting check (the same checks as the pre-commit hooks).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Regenerate tests/baselines/*.json on purpose (review the diff before committing).
baselines: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest tests/book/test_notebooks.py --update-baselines

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_retrieval.py
	$(BIN)/python benchmarks/bench_losses.py --threads 1
	$(BIN)/python benchmarks/bench_pipeline.py

clean:
	rm -rf _build

# Rewrite the output-free .ipynb twins (for the Colab button) from the MyST-Markdown pages, the source of truth.
twins: $(STAMP)
	$(BIN)/python -m tests.pages --sync-twins
