# From a blocking echo server to async streams, in C.
#
#   make                 build every chapter in place (chapters/NN-name/server) and the tools
#   make test            build, then run every bats suite (fetches bats with npm if it is missing)
#   make test CH=03      only chapter 03's suites
#   make run [CH=NN]     build and run the newest chapter's server (or chapter NN) on 127.0.0.1:8888
#   make compare         benchmark every chapter side by side (docs/results.json, .md; QUICK=1)
#   make compare-redis   chapter 13 against a real redis-server [OUT=FILE]
#   make clean           remove everything built
#   SANITIZE=1           with any of the above: build with ASan + UBSan + LSan
#   SANITIZE=thread      the same with ThreadSanitizer (for the threaded chapters 03, 11)
#   CC=clang             any C11 compiler

CHAPTERS := $(sort $(patsubst %/,%,$(wildcard chapters/[0-9][0-9]-*/)))
BATS_LOCAL := .deps/node_modules/bats/bin/bats

.PHONY: all tools $(CHAPTERS) test run compare clean

all: tools $(CHAPTERS)

tools:
	@$(MAKE) --no-print-directory -C tools

$(CHAPTERS):
	@$(MAKE) --no-print-directory -C $@

# bats from the system if it is there, else from npm into .deps/ (no root needed).
BATS := $(shell command -v bats 2>/dev/null)
ifeq ($(BATS),)
BATS := $(abspath $(BATS_LOCAL))
endif

$(BATS_LOCAL):
	@command -v npm >/dev/null 2>&1 || { echo "bats is missing: install it with 'apt-get install bats' (or install npm and run make test again)"; exit 1; }
	npm install --no-audit --no-fund --prefix .deps bats >/dev/null 2>&1 || { echo "could not fetch bats with npm: install it with 'apt-get install bats'"; exit 1; }
	@test -x $(BATS_LOCAL) || { echo "npm did not install bats: install it with 'apt-get install bats'"; exit 1; }

test: all $(if $(filter $(abspath $(BATS_LOCAL)),$(BATS)),$(BATS_LOCAL))
	@BATS="$(BATS)" tests/run $(CH)

# Without CH: the newest chapter built here (off Linux, 11 and 12 are not).
run: all
	@dir=$(if $(CH),$(firstword $(filter chapters/$(CH)%,$(CHAPTERS))),$$(for d in $(CHAPTERS); do test -x $$d/server && echo $$d; done | tail -n 1)); \
	test -n "$$dir" || { echo "no chapter matches CH=$(CH)"; exit 2; }; \
	echo "running $$dir/server (Ctrl-C to stop; try: tools/echo-client <<< hello)"; \
	exec $$dir/server --port 8888

# tools/compare (measure, report, targets) and tools/timeline: Python 3, standard library only.
NEED_PYTHON = command -v python3 >/dev/null 2>&1 || { echo "make $@ needs python3, which is not installed (apt-get install python3); the rest of the project does not"; exit 1; }

compare: all
	@$(NEED_PYTHON)
	@CC="$(CC)" tools/compare $(if $(QUICK),--quick)

# make compare-redis [OUT=FILE]: chapter 13 against a real redis-server, both
# driven by redis-benchmark; writes a Markdown section (for docs/results.md).
.PHONY: compare-redis
compare-redis: all
	@$(NEED_PYTHON)
	@tools/compare-redis --out $(or $(OUT),docs/results-redis.md)

# make timeline [CH=NN]: swimlanes of three clients from the servers' -v trace (docs/timeline-*.svg)
.PHONY: timeline
timeline: all
	@$(NEED_PYTHON)
	@tools/timeline $(if $(CH),$(CH),--docs)

# Leaves only tracked files, except .deps/ (bats fetched by npm: not built here,
# and kept so a clean build does not download it again; rm -rf .deps for that).
clean:
	@$(MAKE) --no-print-directory -C tools clean
	@for dir in $(CHAPTERS); do $(MAKE) --no-print-directory -C $$dir clean; done
	@rm -rf tools/__pycache__
