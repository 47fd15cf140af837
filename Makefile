# vm2mail: `make demo` starts a local demo stack and the gateway; `make test` runs the whole test suite.
# Both install what is missing first (Debian packages as root, then a virtualenv in .venv).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
# libnet-ssleay-perl and libio-socket-ssl-perl: swaks needs them for STARTTLS (a recommends, not a depends).
APT_PACKAGES := ffmpeg dovecot-imapd gnupg sox swaks libnet-ssleay-perl libio-socket-ssl-perl openssl \
	ca-certificates python3-venv

.PHONY: deps system-deps venv test lint demo bench bench-ingest bench-smtp bench-menu bench-watch bench-claims clean

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
	rm -rf .work .pytest_cache .mypy_cache .ruff_cache
