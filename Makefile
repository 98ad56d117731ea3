# The README's two commands: `make book` and `make test`. Both create the virtual environment on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: book test setup baselines bench twins clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -e ".[book,test]"
	touch $(STAMP)

# Build the course: executes every chapter on built-in data (profile "smoke"); warnings are errors.
book: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/jupyter-book build . -W --keep-going

# Unit tests plus the papermill regression run of every book page and notebook.
test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest

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
