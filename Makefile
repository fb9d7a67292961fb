# The README's two commands: `make reproduce` (PROFILE=quick by default) and `make test`.
# Each brings up .venv and what it needs on first use, and is a quick no-op after.
PYTHON ?= python3
PROFILE ?= quick
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FMNIST_DEB := /usr/share/datasets/fashion-mnist

.PHONY: help venv data test reproduce check-profile book student record browser bench clean clean-cache FORCE

help:
	@echo "make reproduce [PROFILE=smoke|quick|paper]  run the experiments into results/<profile>/"
	@echo "make reproduce PROFILE=full                 the paper's Fashion-MNIST schedule, whole test set, T up to 256 (under 2 h on 2 cores)"
	@echo "make reproduce PROFILE=cifar-cpu            the CIFAR-10 chapter on the JPEG copy, reduced width (under an hour on 2 cores)"
	@echo "make test                                   unit tests, every chapter under the smoke profile (nbval), the smoke book checked in Chromium"
	@echo "make book [PROFILE=...]                     render _build/html with the outputs of a reproduce run"
	@echo "make bench                                  speed, memory, spikes and SpikingJelly into results/bench/"
	@echo "make student                                the chapters without solutions into _build/student/ (for handing out)"
	@echo "make record PROFILE=cifar-cpu                commit-ready copy of results/<profile>/ in records/<profile>/ with its provenance"

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
	  { echo "error: $(PYTHON) is older than Python 3.10; run make PYTHON=python3.11 ..." >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt setuptools
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

venv: $(STAMP)

# Fashion-MNIST: data/fashion-mnist, then Debian's package (installed here when root), else a
# torchvision download at run time; the library says what it tried if all three fail.
data:
	@if [ -f data/fashion-mnist/t10k-labels-idx1-ubyte.gz ] || [ -f data/FashionMNIST/raw/t10k-labels-idx1-ubyte.gz ] \
	  || [ -f $(FMNIST_DEB)/t10k-labels-idx1-ubyte.gz ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing Debian's dataset-fashion-mnist into $(FMNIST_DEB)"; \
	  (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null)) || \
	  { echo "error: could not install dataset-fashion-mnist; see data/README.md" >&2; exit 1; }; \
	else \
	  echo "note: Fashion-MNIST is not in data/fashion-mnist nor $(FMNIST_DEB);"; \
	  echo "      run 'sudo apt-get install dataset-fashion-mnist' or copy the four .gz files to data/fashion-mnist."; \
	  echo "      Trying a torchvision download at run time."; \
	fi

# Unit tests; every chapter under the smoke profile with nbval; then the smoke reproduction
# rendered as a book and every page opened in headless Chromium. The chapters run two at a
# time (pytest-xdist keeps each notebook's cells on one worker), which fits make test into
# 15 minutes on two cores.
test: $(STAMP) data browser
	$(PY) -m pytest tests
	NEGSPIKE_PROFILE=smoke TQDM_DISABLE=1 $(PY) -m pytest -p no:cacheprovider -n 2 --dist loadscope --nbval-lax --nbval-current-env book/
	$(MAKE) --no-print-directory -j2 reproduce PROFILE=smoke
	$(PY) scripts/build_book.py --profile smoke --out _build/smoke-test
	$(PY) scripts/check_book.py _build/smoke-test/_build/html

# The rendered book (_build/html) with the outputs of `make reproduce PROFILE=...`.
book: $(STAMP)
	$(PY) scripts/build_book.py --profile $(PROFILE)
	@echo "Open _build/html/index.html"

# The chapters for students: every cell tagged `solution` removed, outputs cleared.
student: $(STAMP)
	$(PY) scripts/make_student.py --out _build/student

# A long run's tables as a record every build can show (the CIFAR-10 chapter and the report
# fall back to records/cifar-cpu/ when this machine has not run cifar-cpu); run it right after
# `make reproduce PROFILE=...`, then commit records/<profile>/.
record: $(STAMP)
	$(PY) scripts/record_results.py $(PROFILE) $(if $(WALL_MINUTES),--wall-minutes $(WALL_MINUTES))

browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing Debian's chromium for the page checks"; \
	  (apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)); \
	else \
	  echo "error: headless Chromium is needed for the page checks: run 'sudo apt-get install chromium'" >&2; exit 1; \
	fi

# Every chapter of _toc.yml, or those of the profile's `chapters: [...]` line, executed by
# papermill into results/<profile>/notebooks/. Expensive steps are cached in data/cache, so a
# re-run after an interruption redoes nothing that had finished. The report chapter runs
# last; `make reproduce -j2` runs others in parallel.
TOC_CHAPTERS := $(shell sed -n 's|.*file: book/\([A-Za-z0-9_]*\).*|\1|p' _toc.yml)
PROFILE_FILE := $(if $(filter %.yaml %.yml,$(PROFILE)),$(PROFILE),profiles/$(PROFILE).yaml)
PROFILE_CHAPTERS := $(shell sed -n 's/^chapters: *\[\(.*\)\]/\1/p' $(PROFILE_FILE) 2>/dev/null | tr ',' ' ')
RUN_CHAPTERS := $(or $(PROFILE_CHAPTERS),$(TOC_CHAPTERS))
CHAPTERS := $(filter-out report,$(RUN_CHAPTERS))
PROFILE_NAME := $(patsubst %.yml,%,$(patsubst %.yaml,%,$(notdir $(PROFILE))))
NB_OUT := results/$(PROFILE_NAME)/notebooks
CHAPTER_RUNS := $(foreach c,$(CHAPTERS),$(if $(wildcard book/$(c).ipynb),$(NB_OUT)/$(c).ipynb))
REPORT_RUN := $(if $(and $(filter report,$(RUN_CHAPTERS)),$(wildcard book/report.ipynb)),$(NB_OUT)/report.ipynb)

reproduce: $(STAMP) data check-profile $(CHAPTER_RUNS) $(REPORT_RUN)
	@echo "Reproduction under profile $(PROFILE_NAME) done: results/$(PROFILE_NAME)/"

# The chapter list is read with sed (it must work before .venv exists); this checks that sed
# read what the profile means.
check-profile: $(STAMP)
	@$(PY) -m negspike.profiles "$(PROFILE)"
	@test "$$($(PY) -m negspike.profiles --chapters "$(PROFILE)" | tr '\n' ' ' | sed 's/ *$$//')" = "$(strip $(RUN_CHAPTERS))" || \
	  { echo "error: write the profile's chapters on one line without quotes, e.g. chapters: [cifar10]" >&2; exit 1; }

$(NB_OUT)/%.ipynb: book/%.ipynb FORCE | $(STAMP) check-profile
	@mkdir -p $(NB_OUT)
	$(PY) scripts/run_chapter.py $< $@ --profile $(PROFILE)

$(NB_OUT)/report.ipynb: $(CHAPTER_RUNS)

FORCE:

# Benchmarks into results/bench/ (the Performance chapter plots them). SpikingJelly comes from
# requirements-bench.txt, which the tests never need. Spikes and peers use the quick profile's
# trained models: cached after `make reproduce`, trained here otherwise.
bench: $(STAMP)
	$(PY) -m pip install -q --no-deps -r requirements-bench.txt
	$(PY) benchmarks/bench_simulation.py
	$(PY) benchmarks/bench_calibration.py
	$(PY) benchmarks/bench_spikes.py
	$(PY) benchmarks/bench_peers.py

clean-cache:
	rm -rf data/cache

clean:
	rm -rf results _build
