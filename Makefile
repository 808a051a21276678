# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_DIR   ?= data/demo
DEMO_DEALS ?= 20000
DEMO_SEED  ?= 7
DEMO_EXPORT ?= 2026-11-30# a fixed "now", so the documented demo figures reproduce

.PHONY: demo test test-all check bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the dependencies change; the stamp records which extras are in.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test,spark,dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/dealscore generate --deals $(DEMO_DEALS) --seed $(DEMO_SEED) --export-date $(DEMO_EXPORT) --out $(DEMO_DIR)/crm
	$(BIN)/dealscore validate $(DEMO_DIR)/crm
	$(BIN)/dealscore train --data $(DEMO_DIR)/crm --config training/default.toml
	$(BIN)/dealscore score --data $(DEMO_DIR)/crm --out sqlite:///scores.db
	$(BIN)/dealscore compare --data $(DEMO_DIR)/crm --by team
	$(BIN)/dealscore report --data $(DEMO_DIR)/crm --out $(DEMO_DIR)/report.html --periods 4
	@echo
	@echo "report:    $(DEMO_DIR)/report.html (open it in a browser)"
	@echo "scores:    scores.db (SQLite, tables scores and scores_rejected)"
	@echo "MLflow UI: $(BIN)/mlflow ui, then http://127.0.0.1:5000"

test: install
	$(BIN)/python -m pytest -q

test-all: install
	$(BIN)/python -m pytest -q -m "slow or not slow"

# Lint, formatting and types (ruff and mypy, configured in pyproject.toml); CI runs it first.
check: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	PYTHONWARNINGS=ignore $(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/generate_validate.py --deals 1000000
	$(BIN)/python benchmarks/features.py --deals 1000000
	$(BIN)/python benchmarks/train.py --deals 300000
	$(BIN)/python benchmarks/worlds.py
	$(BIN)/python benchmarks/score.py --deals 1000000
	$(BIN)/python benchmarks/write.py --rows 1000000
	$(BIN)/python benchmarks/spark_score.py --deals 1000000

clean:
	rm -rf $(VENV) data .pytest_cache mlflow.db mlruns scores.db
