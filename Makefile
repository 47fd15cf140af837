# vm2mail: `make demo` starts a local demo stack and the gateway; `make test` runs the whole test suite.
# Both install what is missing first (Debian packages as root, then a virtualenv in .venv).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
# libnet-ssleay-perl and libio-socket-ssl-perl: swaks needs them for STARTTLS (a recommends, not a depends).
# systemd (systemd-analyze) and libseccomp2: the tests run the gateway under the unit's own syscall filter.
APT_PACKAGES := ffmpeg dovecot-imapd gnupg sox swaks libnet-ssleay-perl libio-socket-ssl-perl openssl \
	ca-certificates python3-venv systemd libseccomp2

.PHONY: deps system-deps venv test lint wheel-demo demo bench bench-ingest bench-smtp bench-menu bench-watch bench-claims clean

deps: system-deps venv

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages (missing:$$missing)"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	fi
	@# Debian starts dovecot.service on install; the demo and tests run their own instances.
	@if command -v systemctl >/dev/null && systemctl is-active -q dovecot 2>/dev/null; then \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; $$SUDO systemctl stop dovecot || true; fi

$(VENV)/.installed: pyproject.toml
	@[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: deps
	$(VENV)/bin/pytest

# The wheel as users install it (not editable, clean venv, run from outside the checkout): one demo call.
WHEEL_DIR := .work/wheel
wheel-demo: system-deps
	rm -rf $(WHEEL_DIR) && mkdir -p $(WHEEL_DIR)
	$(PYTHON) -m venv $(WHEEL_DIR)/venv
	$(WHEEL_DIR)/venv/bin/pip install -q --upgrade pip
	$(WHEEL_DIR)/venv/bin/pip wheel -q --no-deps -w $(WHEEL_DIR)/dist . && rm -rf build
	$(WHEEL_DIR)/venv/bin/pip install -q $(WHEEL_DIR)/dist/vm2mail-*.whl
	cd $(WHEEL_DIR) && venv/bin/python -c 'import sys, vm2mail; sys.exit("site-packages" not in vm2mail.__file__)'
	cd $(WHEEL_DIR) && venv/bin/python -m vm2mail.devstack.demo --once --root demo

demo: deps
	$(VENV)/bin/python -m vm2mail.devstack.demo

# Each bench prints its figures (and ratios against a reference measured in the same run).
bench: bench-ingest bench-smtp bench-menu bench-watch bench-claims

bench-ingest: deps
	$(VENV)/bin/python bench/ingest.py

bench-smtp: deps
	$(VENV)/bin/python bench/smtp.py

bench-menu: deps
	$(VENV)/bin/python bench/menu.py

bench-watch: deps
	$(VENV)/bin/python bench/watch.py

bench-claims: deps
	$(VENV)/bin/python bench/claims.py

clean:
	rm -rf .work build .pytest_cache .mypy_cache .ruff_cache
