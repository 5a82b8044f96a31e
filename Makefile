# The two commands of the README: `make run` and `make test`. Both set up everything.
PYTHON ?= python3
VENV := .venv
# Test processes in parallel (pytest-xdist); each has its own database, broker folder and broker db.
TEST_WORKERS ?= auto
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-$(shell cat requirements.txt | cksum | cut -d' ' -f1)
DEV_STAMP := $(VENV)/.dev-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: run test lint bench bench-quality clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(RUNTIME_STAMP)

# The demo replays the newest bars of the bundled data so paper agents trade visibly.
run: export LAB_REPLAY_ENABLED ?= 1
run: $(RUNTIME_STAMP)
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py load_sample_data
	$(BIN)/python manage.py replay_setup
	$(BIN)/python manage.py ensure_operator
	$(BIN)/python manage.py seed_demo
	exec $(BIN)/python -m config.launcher

test: $(DEV_STAMP)
	LAB_VAR_DIR=$(CURDIR)/var/test $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

bench: $(DEV_STAMP)
	$(BIN)/python bench/backtest.py
	$(BIN)/python bench/iteration.py
	$(BIN)/python bench/scheduling.py

# How honest learning is (issue 12): minutes, so apart from `make bench`.
bench-quality: $(DEV_STAMP)
	$(BIN)/python bench/learning_quality.py

clean:
	rm -rf $(VENV) var
