# Two commands on a fresh machine: `make run` (the platform on local defaults) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT := $(if $(filter 0,$(shell id -u)),,sudo )apt-get
# the same local databases as `make run` (deploy/local.py), unless the environment says otherwise
LOCAL_IDENTITY_DB ?= $(or $(IDENTITY_DB_URI),sqlite:///$(CURDIR)/var/identity.db)
LOCAL_COMMUNES_DB ?= $(or $(COMMUNES_DB_URI),sqlite:///$(CURDIR)/var/communes.db)

.PHONY: chromium run test unit lint format admin commune migrate bench bench-booking bench-invoicing clean install

$(STAMP): pyproject.toml requirements/constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required (Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade 'pip>=24' 'setuptools==80.10.2' wheel
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The whole platform on local defaults: SQLite files under var/, local RabbitMQ, emails as files.
run: $(STAMP)
	$(BIN)/python -m deploy.local run

migrate: $(STAMP)
	$(BIN)/python -m deploy.local migrate

## make admin EMAIL=... PASSWORD=...: a verified platform admin on the same local default as `make run`.
admin: $(STAMP)
	@test -n "$(EMAIL)" && test -n "$(PASSWORD)" || { echo "usage: make admin EMAIL=you@example.org PASSWORD=..."; exit 2; }
	$(BIN)/python -m deploy.local migrate >/dev/null
	ADMIN_PASSWORD='$(PASSWORD)' IDENTITY_DB_URI=$(LOCAL_IDENTITY_DB) $(BIN)/python -m services.identity.cli create-admin --email '$(EMAIL)'

## make commune NAME=... INSEE=... [AGENT_EMAIL=...]: a commune and its first agent (granted, or invited).
commune: $(STAMP)
	@test -n "$(NAME)" && test -n "$(INSEE)" || { echo "usage: make commune NAME='Ville' INSEE=12345 [AGENT_EMAIL=agent@example.org]"; exit 2; }
	$(BIN)/python -m deploy.local migrate >/dev/null
	IDENTITY_DB_URI=$(LOCAL_IDENTITY_DB) COMMUNES_DB_URI=$(LOCAL_COMMUNES_DB) $(BIN)/python -m services.communes.cli \
	  create-commune --name '$(NAME)' --insee '$(INSEE)' $(if $(AGENT_EMAIL),--agent-email '$(AGENT_EMAIL)')

## The whole suite: unit, integration (real PostgreSQL + RabbitMQ), end-to-end over HTTP.
test: $(STAMP) chromium
	$(BIN)/python -m deploy.check_services
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

## Debian's chromium for the browser tests (Playwright drives it; it never downloads a browser).
chromium:
	@command -v chromium >/dev/null || { echo "installing Debian's chromium for the browser tests"; \
	  $(APT) update -q && DEBIAN_FRONTEND=noninteractive $(APT) install -y -q chromium; } \
	  || { echo "chromium is required by the browser tests: apt-get install chromium"; exit 1; }

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/gateway_bench.py

## the booking benchmark: month calendar and 5-day cart beside the echo, and the 2,500-parent rush (~2 min)
bench-booking: $(STAMP)
	$(BIN)/python bench/booking_bench.py

## the month-end invoicing benchmark: 10,000 then 20,000 families x 20 postpaid days on PostgreSQL
bench-invoicing: $(STAMP)
	$(BIN)/python bench/invoicing_bench.py

clean:
	rm -rf var/*.db var/mail var/log
