# res_stasis_broadcast_rs — build, development runtime, tests, demo, install.
#
#   make            build res_stasis_broadcast_rs.so
#   make demo       runtime up, module loaded, real calls broadcast and claimed
#   make test       unit and integration tests against a real Asterisk
#   make node-deps  Node.js (if missing) and the pinned npm packages of tests/node
#                   and examples/agents/node (make test runs it)
#   make py-deps    a Python virtualenv in target/python-venv with the example
#                   Python agent's pinned packages (make test and make test-matrix run it)
#   make test-matrix the integration suites and an ari-client race on every
#                   Asterisk version: Debian's 22.10.1 plus each release tarball
#                   in ASTERISK_SOURCES, built from source (MATRIX_VERSIONS to choose)
#   make soak       the chaos soak (tests/soak.rs) on the runtime: SOAK_CALLS
#                   (default 5000), SOAK_SEED, SOAK_RUNTIME_SECS
#   make soak-valgrind the same soak with Asterisk under valgrind memcheck, then
#                   module unload; valgrind's report must not name the module
#                   (SOAK_VALGRIND_CALLS, default 300; needs the Debian runtime's valgrind)
#   make fixtures   record what Asterisk's C module sends (CallBroadcast,
#                   CallClaimed) into tests/fixtures/, which tests/feature.rs
#                   compares ours with on every version (needs Debian's 22.10.1)
#   make bench      ours vs the C reference vs plain Stasis(), same Asterisk, one run
#                   (BENCH_QUICK=1: a short smoke run; results in target/bench-quick/)
#   make install    install into an Asterisk (DESTDIR, ASTMODDIR, ASTDATADIR, ASTETCDIR)
#   make uninstall  remove exactly what install installed (same variables)

MODULE        := res_stasis_broadcast_rs.so
CARGO         ?= cargo
RUNTIME_ROOT  ?= $(or $(STASIS_BROADCAST_ROOT),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/res_stasis_broadcast_rs/sid-root)
export STASIS_BROADCAST_ROOT := $(RUNTIME_ROOT)

# Where Asterisk keeps things on a standard (Debian-style) installation;
# Asterisk built from source uses ASTMODDIR=/usr/lib/asterisk/modules and
# ASTDATADIR=/var/lib/asterisk. `make install` puts the module in ASTMODDIR,
# its XML documentation in ASTDATADIR/documentation/thirdparty (read by
# Asterisk at startup) and the sample configuration in ASTETCDIR, all under
# DESTDIR when that is set (for packaging).
MULTIARCH     := $(shell $(or $(CC),cc) -print-multiarch 2>/dev/null)
ASTMODDIR     ?= /usr/lib/$(if $(MULTIARCH),$(MULTIARCH)/)asterisk/modules
ASTDATADIR    ?= /usr/share/asterisk
ASTETCDIR     ?= /etc/asterisk
DESTDIR       ?=
XMLDOC        := xmldocs/res_stasis_broadcast_rs-en_US.xml
SAMPLE_CONF   := configs/stasis_broadcast.conf.sample
INSTALLED      = $(DESTDIR)$(ASTMODDIR)/$(MODULE) \
                 $(DESTDIR)$(ASTDATADIR)/documentation/thirdparty/$(notdir $(XMLDOC)) \
                 $(DESTDIR)$(ASTETCDIR)/$(notdir $(SAMPLE_CONF))

# Where cargo builds (scripts/test-matrix.sh builds into the same directories).
TARGET_DIR    := $(or $(CARGO_TARGET_DIR),target)
# Fat LTO and one codegen unit (profile release) for the shipped .so only;
# the test binaries, the fault-injection build and the bench driver use
# profile ci (Cargo.toml), which builds several times faster.
CI_PROFILE    := --profile ci
FAULT_TARGET  := $(TARGET_DIR)/fault
FAULT_MODULE  := $(FAULT_TARGET)/ci/libres_stasis_broadcast_rs.so

# Headers: ASTERISK_INCLUDE_DIR if set, else asterisk-headers/ (filled from the
# runtime), else /usr/include when it has Asterisk's development headers.
ifeq ($(ASTERISK_INCLUDE_DIR),)
  ifeq ($(wildcard /usr/include/asterisk/module.h),)
    HEADERS_DEP := asterisk-headers/asterisk/module.h
  endif
else
  # build.rs reads it from the environment, however make was given it.
  export ASTERISK_INCLUDE_DIR
endif

# The ari-client race (tests/ari_client.rs) runs tests/node/race.js with the
# npm package pinned in tests/node/package-lock.json.
NODE_DIR      := tests/node
NODE_STAMP    := $(NODE_DIR)/node_modules/.package-lock.json
# The example agents (examples/agents), which tests/agents.rs runs: the Node
# one has its own pinned packages (users copy the directory), the Python one
# runs in a virtualenv kept out of the repository.
AGENT_NODE_DIR   := examples/agents/node
AGENT_NODE_STAMP := $(AGENT_NODE_DIR)/node_modules/.package-lock.json
PY_REQUIREMENTS  := examples/agents/python/requirements.txt
PY_VENV          := target/python-venv
PY_STAMP         := $(PY_VENV)/requirements.txt

# Release tarballs (asterisk-<version>.tar.xz) for the version matrix.
ASTERISK_SOURCES ?= $(abspath $(CURDIR)/../shared/asterisk-src)
export ASTERISK_SOURCES
MATRIX_VERSIONS  ?=

.PHONY: fixtures soak soak-valgrind all build setup nodejs node-deps python3-venv py-deps runtime headers test test-matrix unit-test integration-test demo bench install uninstall clean

all: build

build: setup $(HEADERS_DEP)
	$(CARGO) build --release -p res_stasis_broadcast_rs --lib
	cp $(TARGET_DIR)/release/libres_stasis_broadcast_rs.so $(MODULE)

# Host packages the build needs: libclang for bindgen, debootstrap for the runtime.
setup:
	@missing=""; \
	for pkg in libclang-dev debootstrap; do \
		dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "setup: installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# Node.js and npm from Debian's packages when the machine has neither, then
# exactly the packages tests/node/package-lock.json lists (again only when
# package.json or the lock file changed).
node-deps: nodejs $(NODE_STAMP) $(AGENT_NODE_STAMP)

nodejs:
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
		echo "nodejs: installing nodejs npm"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	fi

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json | nodejs
	cd $(NODE_DIR) && npm ci --no-audit --no-fund
	@touch $@

$(AGENT_NODE_STAMP): $(AGENT_NODE_DIR)/package.json $(AGENT_NODE_DIR)/package-lock.json | nodejs
	cd $(AGENT_NODE_DIR) && npm ci --no-audit --no-fund
	@touch $@

# Python 3 with venv and pip (Debian splits them out of python3), then a
# virtualenv holding exactly the pinned requirements, remade when they change.
py-deps: python3-venv $(PY_STAMP)

python3-venv:
	@if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then \
		echo "python3-venv: installing python3 python3-venv"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null; \
	fi

$(PY_STAMP): $(PY_REQUIREMENTS) | python3-venv
	rm -rf $(PY_VENV)
	python3 -m venv $(PY_VENV)
	$(PY_VENV)/bin/pip install --quiet --disable-pip-version-check -r $(PY_REQUIREMENTS)
	cp $(PY_REQUIREMENTS) $@

runtime: setup
	scripts/runtime.sh

headers: runtime
	rm -rf asterisk-headers/asterisk asterisk-headers/asterisk.h
	cp -a $(RUNTIME_ROOT)/usr/include/asterisk.h $(RUNTIME_ROOT)/usr/include/asterisk asterisk-headers/
	@echo "headers: copied from $(RUNTIME_ROOT)/usr/include"

asterisk-headers/asterisk/module.h:
	$(MAKE) headers

# The panic-guard test loads a build with a fault-injection hook; it is built
# apart so the module everything else tests is the one users get.
$(FAULT_MODULE): build
	$(CARGO) build $(CI_PROFILE) -p res_stasis_broadcast_rs --lib --features fault-injection --target-dir $(FAULT_TARGET)

# --no-fail-fast: a red run names every failing suite, not only the first.
test: runtime build $(FAULT_MODULE) node-deps py-deps
	STASIS_BROADCAST_MODULE=$(CURDIR)/$(MODULE) STASIS_BROADCAST_FAULT_MODULE=$(CURDIR)/$(FAULT_MODULE) \
		$(CARGO) test $(CI_PROFILE) --workspace --no-fail-fast

# The C module's events, recorded on the runtime of `make test` (22.10.1,
# which ships it) by the very tests that otherwise check the recording.
fixtures: runtime
	STASIS_BROADCAST_RECORD_FIXTURES=1 $(CARGO) test $(CI_PROFILE) -p stasis-broadcast-tests --test feature -- \
		--exact nominal_vs_c_module notify_claimed_vs_c_module
	git status --short tests/fixtures

test-matrix: setup node-deps py-deps
	scripts/test-matrix.sh $(MATRIX_VERSIONS)

SOAK_CALLS ?= 5000
SOAK_SEED  ?= 1
soak: runtime build
	SOAK_CALLS=$(SOAK_CALLS) SOAK_SEED=$(SOAK_SEED) STASIS_BROADCAST_MODULE=$(CURDIR)/$(MODULE) \
		$(CARGO) test $(CI_PROFILE) --test soak -- --nocapture

soak-valgrind: runtime build
	SOAK_VALGRIND=1 SOAK_CALLS=$(or $(SOAK_VALGRIND_CALLS),300) SOAK_SEED=$(SOAK_SEED) \
		STASIS_BROADCAST_MODULE=$(CURDIR)/$(MODULE) \
		$(CARGO) test $(CI_PROFILE) --test soak -- --nocapture

demo: runtime build
	STASIS_BROADCAST_MODULE=$(CURDIR)/$(MODULE) $(CARGO) run --release --example demo

# Writes bench/results/latest.{md,json,png} and the README's performance table.
bench: runtime build
	STASIS_BROADCAST_MODULE=$(CURDIR)/$(MODULE) BENCH_QUICK=$(BENCH_QUICK) \
		$(CARGO) run $(CI_PROFILE) -p stasis-broadcast-bench

install: build
	install -D -m 0755 $(MODULE) $(DESTDIR)$(ASTMODDIR)/$(MODULE)
	install -D -m 0644 $(XMLDOC) $(DESTDIR)$(ASTDATADIR)/documentation/thirdparty/$(notdir $(XMLDOC))
	install -D -m 0644 $(SAMPLE_CONF) $(DESTDIR)$(ASTETCDIR)/$(notdir $(SAMPLE_CONF))

# Removes exactly what install put there; directories and any
# stasis_broadcast.conf stay.
uninstall:
	rm -f $(INSTALLED)

clean:
	$(CARGO) clean
	rm -f $(MODULE)
