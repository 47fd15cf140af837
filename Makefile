# vm2mail: `make demo` starts a local demo stack and the gateway; `make test` runs the whole test suite.
# Both install what is missing first (Debian packages as root, then a virtualenv in .venv).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
# libnet-ssleay-perl and libio-socket-ssl-perl: swaks needs them for STARTTLS (a recommends, not a depends).
# systemd (systemd-analyze) and libseccomp2: the tests run the gateway under the unit's own syscall filter.
APT_PACKAGES := ffmpeg dovecot-imapd gnupg sox swaks libnet-ssleay-perl libio-socket-ssl-perl openssl \
	ca-certificates python3-venv systemd libseccomp2
# The web inbox's tests drive Debian's headless Chromium (tests/web, bench/web.py).
APT_PACKAGES += chromium
# npm installs the web inbox's browser libraries. Checked by command, not by package: NodeSource's
# nodejs bundles npm, and Debian's npm package would pull Debian's nodejs over it.
NODE_PACKAGES := nodejs npm

.PHONY: deps system-deps node-deps venv vendor test lint wheel-demo demo bench bench-ingest bench-smtp bench-menu bench-watch bench-claims bench-routing bench-web clean

deps: system-deps node-deps venv vendor

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

node-deps:
	@if ! command -v npm >/dev/null; then \
	  echo "installing Debian packages (missing: npm)"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(NODE_PACKAGES); \
	fi

# The web inbox's browser libraries, pinned with integrity hashes in package-lock.json (npm ci checks
# them), copied into the package so the gateway serves them and a built wheel ships them.
VENDOR := vm2mail/web/static/vendor
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

$(VENDOR)/.installed: node_modules/.package-lock.json
	rm -rf $(VENDOR) && mkdir -p $(VENDOR)/postal-mime
	cp node_modules/openpgp/dist/openpgp.min.mjs node_modules/openpgp/LICENSE $(VENDOR)/
	cp node_modules/postal-mime/dist/esm/*.js node_modules/postal-mime/LICENSE.txt $(VENDOR)/postal-mime/
	@touch $@

vendor: $(VENDOR)/.installed

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: deps
	$(VENV)/bin/pytest

# The wheel as users install it (not editable, clean venv, run from outside the checkout): one demo call.
WHEEL_DIR := .work/wheel
wheel-demo: system-deps node-deps vendor
	rm -rf $(WHEEL_DIR) && mkdir -p $(WHEEL_DIR)
	$(PYTHON) -m venv $(WHEEL_DIR)/venv
	$(WHEEL_DIR)/venv/bin/pip install -q --upgrade pip
	$(WHEEL_DIR)/venv/bin/pip wheel -q --no-deps -w $(WHEEL_DIR)/dist . && rm -rf build
	$(WHEEL_DIR)/venv/bin/pip install -q $(WHEEL_DIR)/dist/vm2mail-*.whl
	cd $(WHEEL_DIR) && venv/bin/python -c 'import sys, vm2mail; sys.exit("site-packages" not in vm2mail.__file__)'
	cd $(WHEEL_DIR) && venv/bin/python -c 'import sys; from vm2mail.web.assets import Assets; sys.exit(Assets.load().missing or None)'
	cd $(WHEEL_DIR) && venv/bin/python -m vm2mail.devstack.demo --once --root demo

demo: deps
	$(VENV)/bin/python -m vm2mail.devstack.demo

# Each bench prints its figures (and ratios against a reference measured in the same run).
bench: bench-ingest bench-smtp bench-menu bench-watch bench-claims bench-routing bench-web

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

bench-routing: deps
	$(VENV)/bin/python bench/routing.py

bench-web: deps
	$(VENV)/bin/python bench/web.py

clean:
	rm -rf .work build .pytest_cache .mypy_cache .ruff_cache
