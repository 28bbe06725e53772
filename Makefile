# kvplace: one small Makefile.  `make` builds the library, the CLI and the tests;
# `make test` runs the suite; `make sanitize` runs it under ASan + UBSan; `make bench` runs
# the benchmarks (on demand, never in CI's test pass).
CC      ?= cc
BUILD   ?= build
PKGS    := inih libcjson
WARN    := -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wstrict-prototypes \
           -Wmissing-prototypes -Wvla -Wformat=2
CFLAGS  ?= -O2 -g
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))
ALL_CFLAGS := $(WARN) $(CFLAGS) $(WERROR) -D_POSIX_C_SOURCE=200809L -pthread \
              -Iinclude -Isrc $(PKG_CFLAGS)
# GLPK (libglpk-dev, the exact solver of `optimal`) has no pkg-config file on Debian.
LDLIBS  := $(PKG_LIBS) -lglpk -lm -pthread

LIB_SRC  := $(sort $(wildcard src/*/*.c))
CLI_SRC  := $(sort $(wildcard cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
BENCH_SRC := $(sort $(wildcard bench/*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
GOLDEN   := $(BUILD)/tests/golden_extract
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
LIB      := $(BUILD)/libkvplace.a
KVPLACE  := $(BUILD)/kvplace

.PHONY: all test sanitize bench clean
all: $(KVPLACE) $(TEST_BIN) $(GOLDEN)

$(BUILD)/%.o: %.c include/kvplace.h $(wildcard src/*/*.h) $(wildcard cli/*.h) $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(KVPLACE): $(CLI_OBJ) $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# The golden tests' JSON reader (tests/golden/README.md): cJSON only, no library.
$(GOLDEN): $(BUILD)/tests/golden_extract.o
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

test: all
	BUILD=$(BUILD) sh tests/run.sh

sanitize:
	$(MAKE) BUILD=build-san CC=clang \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -DKVP_NO_SIMD" test

bench: $(KVPLACE) $(BENCH_BIN)
	BUILD=$(BUILD) sh bench/run.sh

clean:
	rm -rf build build-san build-fuzz

# Robustness (docs/ROBUSTNESS.md).  `make fuzz` builds the libFuzzer harnesses with clang and
# runs each for FUZZ_SECONDS; `make valgrind` runs every unit test under memcheck.
FUZZ_SECONDS ?= 60
VALGRIND := valgrind --error-exitcode=1 --leak-check=full --track-origins=yes --quiet \
            --errors-for-leak-kinds=definite,indirect
.PHONY: fuzz valgrind
fuzz:
	sh tests/fuzz/run.sh $(FUZZ_SECONDS)

valgrind: $(TEST_BIN) $(KVPLACE)
	@rm -rf $(BUILD)/vg && mkdir -p $(BUILD)/vg && set -e; for t in $(TEST_BIN); do \
	  n=$$(basename $$t); printf '%-28s ' "$$n"; \
	  if $(VALGRIND) --log-file=$(BUILD)/vg/$$n.log $$t >$(BUILD)/vg/$$n.out 2>&1; then \
	  tail -n 1 $(BUILD)/vg/$$n.out; else cat $(BUILD)/vg/$$n.out $(BUILD)/vg/$$n.log; exit 1; fi; \
	  done
	@printf '%-28s ' "cli_badinput.sh (kvplace)"; mkdir -p $(BUILD)/vg/cli; \
	  VG_LOGDIR=$(BUILD)/vg/cli KVPLACE_REAL=$(abspath $(KVPLACE)) \
	  KVPLACE=$(abspath tests/valgrind_kvplace.sh) \
	  sh tests/cli_badinput.sh >$(BUILD)/vg/cli.out \
	  || { cat $(BUILD)/vg/cli.out; find $(BUILD)/vg/cli -size +0 -exec cat {} +; exit 1; }; \
	  tail -n 1 $(BUILD)/vg/cli.out
