# The two commands of the README: `make book` builds the book, `make test` runs every test.
# Both create the virtual environment .venv on first use (CPU build of torch).
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
# Progress bars stay silent in stored notebook outputs and in test logs.
export TQDM_DISABLE := 1

.PHONY: book test unit nbval env clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[book]"
	touch $@

book: env  ## execute every chapter (cached) and write the HTML to _build/html
	$(VENV)/bin/jupyter-book build . -W --keep-going

test: unit nbval  ## unit tests, then nbval over every chapter and the HTML checks

unit: env
	$(PY) -m pytest -q tests --ignore=tests/test_book.py

# --nbval-lax: only cells marked `# NBVAL_CHECK_OUTPUT` are compared with the stored outputs
# (rounded key numbers); each chapter asserts its claims in-cell, so every cell still has to run.
# Strict nbval would compare figure PNG bytes and float noise that differ across machines.
nbval: env
	$(PY) -m pytest -q --nbval-lax --nbval-current-env --nbval-cell-timeout=600 book tests/test_book.py

clean:
	rm -rf _build .jupyter_cache
