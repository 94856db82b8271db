# The README's two commands: `make demo` and `make test` (as root on Debian).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint unit bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "pbxbridge needs Python >= 3.11: apt-get install -y python3 python3-venv"; exit 1; }
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "[setup] installing python3-venv with apt-get"; \
	  apt-get install -y -q python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); }
	@# The report's PDF (WeasyPrint) lays text out with Pango, in DejaVu Sans.
	@ldconfig -p | grep -q libpangoft2-1.0.so.0 && test -d /usr/share/fonts/truetype/dejavu || { \
	  echo "[setup] installing Pango and the DejaVu fonts (the report's PDF) with apt-get"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core >/dev/null; }
	@echo "[setup] installing pbxbridge and its test tools into $(VENV)"
	@$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

# The main job on the embedded default: lab Asterisk, pbxbridge, demo calls, results.
demo: $(STAMP)
	$(BIN)/python -m tests.lab.demo

lint: $(STAMP)
	$(BIN)/ruff check pbxbridge tests
	$(BIN)/ruff format --check pbxbridge tests
	$(BIN)/mypy

# Tools the tests call: systemd-analyze (the unit), promtool (rules, dashboard), chromium
# (every page pbxbridge writes or serves, rendered), pdftotext (the report's PDF) and the
# PostgreSQL server (tests/support/postgres.py runs its own throwaway cluster; the system
# cluster that Debian's package may create and start is left alone). The Makefile is a
# prerequisite so that a checkout with an older stamp installs what was added since.
TOOLS_STAMP := $(VENV)/.tools
$(TOOLS_STAMP): Makefile
	@command -v systemd-analyze >/dev/null && command -v promtool >/dev/null || { \
	  echo "[setup] installing systemd-analyze and promtool with apt-get"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    systemd prometheus >/dev/null; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "[setup] installing the PostgreSQL server with apt-get"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    postgresql >/dev/null; }
	@command -v chromium >/dev/null && command -v pdftotext >/dev/null || { \
	  echo "[setup] installing chromium and pdftotext with apt-get"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    chromium poppler-utils >/dev/null; }
	@touch $@

# The whole test suite. The real-Asterisk tests must run: a lab that cannot start fails.
test: lint $(TOOLS_STAMP)
	PBXBRIDGE_REQUIRE_LAB=1 $(BIN)/pytest --cov --cov-report=term

unit: $(STAMP)
	$(BIN)/pytest tests/unit

bench: $(STAMP)
	for b in tests/benchmarks/bench_*.py; do $(BIN)/python -m tests.benchmarks.$$(basename $$b .py) || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
