# kvplace: one small Makefile.  `make` builds the library (static, and shared for Python and
# other programs), the CLI and the tests; `make test` runs the suite; `make sanitize` runs it
# under ASan + UBSan; `make bench` runs the benchmarks (on demand, never in CI's test pass);
# `make install` installs everything under $(DESTDIR)$(PREFIX) (docs/INSTALL.md).
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
SOLIB    := $(BUILD)/libkvplace.so
KVPLACE  := $(BUILD)/kvplace
# The shared library's ABI version (its soname is libkvplace.so.$(SOMAJOR)).
SOMAJOR  := 0
VERSION  := $(shell sed -n 's/^\#define KVP_VERSION "\(.*\)"/\1/p' include/kvplace.h)

.PHONY: all test sanitize sanitize-simd bench clean install uninstall
all: $(KVPLACE) $(TEST_BIN) $(GOLDEN) $(SOLIB)

$(BUILD)/%.o: %.c include/kvplace.h $(wildcard src/*/*.h) $(wildcard cli/*.h) $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# The library's objects are position-independent so that one set serves both libraries; the
# CLI, the tests and the benchmarks link the static one (a program that runs from build/).
# No semantic interposition: calls inside the library stay direct and inlinable, as without
# -fPIC (docs/INSTALL.md).
$(LIB_OBJ): ALL_CFLAGS += -fPIC -fno-semantic-interposition

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(SOLIB): $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -shared -Wl,-soname,libkvplace.so.$(SOMAJOR) -o $@ \
	  $(LIB_OBJ) $(LDLIBS)

$(KVPLACE): $(CLI_OBJ) $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# The golden tests' JSON reader (tests/golden/README.md): cJSON only, no library.
$(GOLDEN): $(BUILD)/tests/golden_extract.o
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# Installation (docs/INSTALL.md).  The Python package goes where Debian's python3 looks:
# /usr/lib/python3/dist-packages for PREFIX=/usr, else PREFIX/lib/python3.X/dist-packages
# (found for /usr/local; for another PREFIX, add that directory to PYTHONPATH).
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
PYTHON     ?= $(firstword $(wildcard /usr/bin/python3) python3)
PYVER       = $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
ifeq ($(PREFIX),/usr)
PYTHONDIR  ?= $(PREFIX)/lib/python3/dist-packages
else
PYTHONDIR  ?= $(PREFIX)/lib/python$(PYVER)/dist-packages
endif
PY_SRC     := $(sort $(wildcard python/kvplace/*.py))

install: $(KVPLACE) $(LIB) $(SOLIB)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(PYTHONDIR)/kvplace
	install -m 755 $(KVPLACE) $(DESTDIR)$(BINDIR)/kvplace
	install -m 644 $(LIB) $(DESTDIR)$(LIBDIR)/libkvplace.a
	install -m 755 $(SOLIB) $(DESTDIR)$(LIBDIR)/libkvplace.so.$(VERSION)
	ln -sf libkvplace.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libkvplace.so.$(SOMAJOR)
	ln -sf libkvplace.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libkvplace.so
	install -m 644 include/kvplace.h $(DESTDIR)$(INCLUDEDIR)/kvplace.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	  -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' dist/kvplace.pc.in \
	  > $(DESTDIR)$(LIBDIR)/pkgconfig/kvplace.pc
	sed -e 's|@VERSION@|$(VERSION)|' dist/kvplace.1 > $(DESTDIR)$(MANDIR)/man1/kvplace.1
	install -m 644 dist/kvplace.bash $(DESTDIR)$(BASHCOMPDIR)/kvplace
	install -m 644 $(PY_SRC) $(DESTDIR)$(PYTHONDIR)/kvplace/
	printf '# Written by make install.\nLIBDIR = "%s"\n' '$(LIBDIR)' \
	  > $(DESTDIR)$(PYTHONDIR)/kvplace/_paths.py
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then \
	  ldconfig; fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/kvplace $(DESTDIR)$(LIBDIR)/libkvplace.a \
	  $(DESTDIR)$(LIBDIR)/libkvplace.so $(DESTDIR)$(LIBDIR)/libkvplace.so.$(SOMAJOR) \
	  $(DESTDIR)$(LIBDIR)/libkvplace.so.$(VERSION) $(DESTDIR)$(INCLUDEDIR)/kvplace.h \
	  $(DESTDIR)$(LIBDIR)/pkgconfig/kvplace.pc $(DESTDIR)$(MANDIR)/man1/kvplace.1 \
	  $(DESTDIR)$(BASHCOMPDIR)/kvplace
	rm -rf $(DESTDIR)$(PYTHONDIR)/kvplace

test: all
	BUILD=$(BUILD) sh tests/run.sh

sanitize:
	$(MAKE) BUILD=build-san CC=clang \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -DKVP_NO_SIMD" test

# The vector forms under ASan + UBSan: `make sanitize` builds without them (KVP_NO_SIMD) and
# valgrind's CPU lacks AVX-512, so neither reaches them.  GCC (the grid's AVX-512 kernels and
# the popcount clones are built by GCC only), SIMD on, the tests of the vector forms; on a CPU
# without AVX-512 they test the SSE2 forms again.
SIMD_SAN_TESTS := test_blocks test_streams test_streams_policies test_synth test_synth_heads \
                  test_lookahead_grid test_fast test_npy_read
sanitize-simd:
	$(MAKE) BUILD=build-ssan CC=gcc \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  $(SIMD_SAN_TESTS:%=build-ssan/tests/%)
	@set -e; for t in $(SIMD_SAN_TESTS); do printf '%-24s ' "$$t"; \
	  out=$$(build-ssan/tests/$$t 2>&1) || { printf '%s\n' "$$out"; exit 1; }; \
	  printf '%s\n' "$$out" | tail -n 1; done

bench: $(KVPLACE) $(BENCH_BIN)
	BUILD=$(BUILD) sh bench/run.sh

clean:
	rm -rf build build-san build-ssan build-fuzz

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
	  if KVP_TEST_LIGHT=1 $(VALGRIND) --log-file=$(BUILD)/vg/$$n.log $$t >$(BUILD)/vg/$$n.out 2>&1; then \
	  tail -n 1 $(BUILD)/vg/$$n.out; else cat $(BUILD)/vg/$$n.out $(BUILD)/vg/$$n.log; exit 1; fi; \
	  done
	@printf '%-28s ' "cli_badinput.sh (kvplace)"; mkdir -p $(BUILD)/vg/cli; \
	  VG_LOGDIR=$(BUILD)/vg/cli KVPLACE_REAL=$(abspath $(KVPLACE)) \
	  KVPLACE=$(abspath tests/valgrind_kvplace.sh) \
	  sh tests/cli_badinput.sh >$(BUILD)/vg/cli.out \
	  || { cat $(BUILD)/vg/cli.out; find $(BUILD)/vg/cli -size +0 -exec cat {} +; exit 1; }; \
	  tail -n 1 $(BUILD)/vg/cli.out
