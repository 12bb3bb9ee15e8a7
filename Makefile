# Interconnect Hub. `make demo` brings the portal up on embedded defaults; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test venv lint fmt migrations-check deploy-check worker beat bench clean

$(VENV)/.installed: requirements.txt
	@PYBIN=$$(scripts/find-python) && echo "Using $$PYBIN ($$($$PYBIN --version))" && \
	  ( [ -x $(PY) ] || $$PYBIN -m venv $(VENV) )
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	@touch $@

venv: $(VENV)/.installed

demo: venv
	VENV=$(VENV) scripts/demo.sh

test: venv
	scripts/ensure-chromium
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

migrations-check: venv
	$(PY) manage.py makemigrations --check --dry-run

deploy-check: venv
	HUB_MODE=production SECRET_KEY=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(64))') \
	  ALLOWED_HOSTS=hub.example.com $(PY) manage.py check --deploy --fail-level WARNING

worker: venv
	$(VENV)/bin/celery -A hub worker -Q default,workflows,telemetry,webhooks -l info

beat: venv
	$(VENV)/bin/celery -A hub beat -s var/celerybeat-schedule -l info

bench: venv
	$(PY) -m bench.runner --record

clean:
	rm -rf var db.sqlite3
