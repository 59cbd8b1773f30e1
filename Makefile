# The two set-up commands of the README are `make run` and `make test`; each
# builds .venv from nothing on first use (Python >= 3.11 as `python3`).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
ARGS   ?=

.PHONY: run demo test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m compileall -q src db
	touch $(STAMP)

# Poll every enabled source in sources.yaml once into the default SQLite
# database (db/ingest.sqlite3), then print the latest stories (of the database
# ARGS names, if it names one: ARGS="--db URL" or "--sources FILE" or "--only KEY").
run: $(STAMP)
	$(BIN)/ingest run --latest 10 $(ARGS)

# The whole thing offline: sample feeds served over loopback are ingested into
# db/demo/demo.sqlite3 and the collection page is served at the address printed
# (http://127.0.0.1:8000/, or another port if that one is taken); Ctrl-C stops it.
demo: $(STAMP)
	$(BIN)/python -m ingest.demo $(ARGS)

test: $(STAMP)
	$(BIN)/pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks db/migrations scheduler.py
	$(BIN)/ruff format --check src tests benchmarks db/migrations scheduler.py
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks db/migrations scheduler.py
	$(BIN)/ruff check --fix src tests benchmarks db/migrations scheduler.py

# the bench extra (reader, psutil) once, not on every run
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/bench_vs_reader.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
