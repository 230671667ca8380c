# AI Nutrition-Pro edge: ngx_mealapi_module + ngx_controlplane_module.
#   make demo   everything running, with example requests printed
#   make test   the test suite (real nginx, PostgreSQL, TLS)

SHELL := /bin/sh
TOP := $(CURDIR)

PACKAGES := nginx nginx-dev gcc make libc6-dev libssl-dev libpq-dev \
	libjansson-dev libpcre2-dev postgresql postgresql-client openssl curl \
	libtest-base-perl libtext-diff-perl wrk perl

NGINX ?= /usr/sbin/nginx

export TEST_NGINX_BINARY ?= $(NGINX)
export TEST_NGINX_MODULES := $(TOP)/build/modules
export TEST_NGINX_PKI := $(TOP)/build/pki
export TEST_NGINX_PG_DIR := $(TOP)/build/pg
export PGPORT_NUTRIPRO ?= 15432
export TEST_NGINX_PG_PORT := $(PGPORT_NUTRIPRO)
export TEST_NGINX_SQL := $(TOP)/sql
export TEST_NGINX_TOP := $(TOP)

.PHONY: all deps build pki db test unit asan demo stop clean bench fuzz

FUZZ_SECONDS ?= 300

all: build

deps:
	@missing=$$(for p in $(PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	        | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then \
	        echo "deps: installing" $$missing; \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	            --no-install-recommends $$missing >build-deps.log 2>&1 \
	        || { cat build-deps.log; exit 1; }; rm -f build-deps.log; \
	    else \
	        echo "deps: missing packages; run:"; \
	        echo "  sudo apt-get install -y" $$missing; exit 1; \
	    fi; \
	fi

build: deps
	@./scripts/build.sh
	@./tools/build.sh >/dev/null

pki:
	@./scripts/pki.sh >/dev/null

db: pki
	@./scripts/pg.sh migrate

# C unit tests: the schema compiler/validator (ASan, UBSan), the crypto
unit: build
	@./fuzz/run.sh selftest
	@build/tools/crypto_selftest >build/crypto_selftest.tap \
	    || { grep -v '^ok' build/crypto_selftest.tap; exit 1; }
	@echo "unit: crypto selftest passed, $$(grep -c '^ok' build/crypto_selftest.tap) checks"

test: build db unit
	@rm -rf t/servroot
	prove -I t/lib -I . -r t
	@if [ "$${CI:-}" = true ]; then $(MAKE) --no-print-directory asan; fi

# the test suite again, against the modules built with ASan and UBSan
# (build/asan/modules) in Debian's nginx with the runtimes preloaded; any
# sanitizer report fails it
asan: build db
	@./scripts/build.sh asan
	@rm -rf t/servroot build/asan/reports
	TEST_NGINX_BINARY=$(TOP)/scripts/nginx-asan.sh NUTRIPRO_TIME_SCALE=3 \
	    TEST_NGINX_MODULES=$(TOP)/build/asan/modules prove -I t/lib -I . -r t
	@if ls build/asan/reports/* >/dev/null 2>&1; then \
	    cat build/asan/reports/*; echo "asan: sanitizer reports above"; \
	    exit 1; fi
	@echo "asan: no sanitizer reports"

demo: build db
	@./scripts/demo.sh start

stop:
	@./scripts/demo.sh stop
	@./scripts/pg.sh stop

bench: build db
	@./bench/run.sh
	@./bench/gateway-throttle.sh
	@./bench/validate.sh

fuzz: build
	@./fuzz/run.sh $(FUZZ_SECONDS)

clean: stop
	rm -rf build t/servroot
