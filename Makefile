# Two commands for a fresh machine: `make run` and `make test` (see README.md).
VENV      ?= .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
NODE_STAMP := tests/interop/node_modules/.installed
INTAKE_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
export INTAKE_TEST_POSTGRES_URL

.PHONY: run test lint typecheck unit bench clean migration openapi bytecode

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[server,dev]'
	touch $(STAMP)

$(NODE_STAMP): tests/interop/package.json tests/interop/package-lock.json
	cd tests/interop && npm ci --silent --no-audit --no-fund
	touch $(NODE_STAMP)

# pip writes bytecode when it installs a package, but not for the project's
# own modules in an editable install; where PYTHONDONTWRITEBYTECODE is set,
# every `intake` command would then compile them from source (about 20 ms).
bytecode: $(STAMP)
	$(PY) -m compileall -q crypto audit schemas service evidence_intake

run: $(STAMP) bytecode
	$(VENV)/bin/intake init
	$(VENV)/bin/intake serve --host 127.0.0.1 --port 8000

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# mypy cannot follow setuptools' package-dir mapping, so it checks a tree of
# symbolic links laid out as the installed package is.
typecheck: $(STAMP)
	rm -rf .typecheck && mkdir -p .typecheck/evidence_intake
	for f in evidence_intake/*; do ln -s ../../$$f .typecheck/evidence_intake/; done
	for p in crypto audit schemas service; do ln -s ../../$$p .typecheck/evidence_intake/$$p; done
	cd .typecheck && ../$(VENV)/bin/mypy --config-file ../pyproject.toml -p evidence_intake

unit: $(STAMP)
	$(PY) -m pytest -q

test: $(STAMP) $(NODE_STAMP) lint typecheck
	$(PY) -m pytest -q

bench: $(STAMP) bytecode
	$(PY) bench/run.py

# Regenerate the initial Alembic migration from the models (see
# service/migrations/regenerate.md) and the OpenAPI document in docs/.
migration: $(STAMP)
	$(PY) -m evidence_intake.service.migrations.runner

openapi: $(STAMP)
	$(VENV)/bin/intake openapi -o docs/openapi.json

clean:
	rm -rf .typecheck .pytest_cache .mypy_cache .ruff_cache
