# The two entry points of the project (see README):
#   make reproduce   the default pipeline end to end, to results/report.pdf
#   make test        the test suite, including a smoke run of the whole pipeline
# Both create the virtual environment .venv when it is missing.

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
CORES ?= all

.PHONY: reproduce test smoke tex venv

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

tex:
	scripts/ensure_tex.sh

reproduce: venv tex
	$(VENV)/bin/snakemake --cores $(CORES)

smoke: venv tex
	$(VENV)/bin/snakemake --cores $(CORES) --configfile config/smoke.yaml --directory results-smoke

test: venv tex
	$(PY) -m pytest
