# trailseal — two commands: `make run` and `make test`. Each installs what it needs into .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= ./trailseal-data

.PHONY: run test bench lint venv clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	@test -f $(DATA)/trailseal.toml || $(BIN)/trailseal init --data $(DATA)
	$(BIN)/trailseal serve --data $(DATA) --host 127.0.0.1 --port 8080 --print-admin-token

test: $(STAMP)
	@command -v rsyslogd >/dev/null || (apt-get update -qq && apt-get install -y -qq rsyslog) >/dev/null
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null
	$(BIN)/ruff check src tests bench
	$(BIN)/pytest -n 2 -q

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	@command -v wrk >/dev/null || (apt-get install -y wrk || (apt-get update && apt-get install -y wrk)) >/dev/null
	@command -v h2load >/dev/null || (apt-get install -y nghttp2-client || (apt-get update && apt-get install -y nghttp2-client)) >/dev/null
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) build *.egg-info
