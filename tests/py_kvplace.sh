#!/bin/sh
# The Python package's tests (tests/python/test_kvplace.py) against $BUILD/libkvplace.so and
# the CLI $KVPLACE.  Needs a python3 with NumPy (Debian's python3-numpy): the first of
# `python3` and /usr/bin/python3 that imports numpy; without one the tests are skipped, and
# the line says so.  Under make sanitize the library is the instrumented one.
BUILD=${BUILD:-build}
KVPLACE=${KVPLACE:-$BUILD/kvplace}
LIB="$BUILD/libkvplace.so"
PY=""
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c "import numpy" >/dev/null 2>&1; then
        PY=$p; break
    fi
done
if [ -z "$PY" ]; then
    echo "SKIPPED: no python3 with numpy (apt-get install python3-numpy)"
    echo "0 passed, 0 failed"; exit 0
fi
if [ ! -e "$LIB" ]; then
    echo "FAILED: $LIB is missing (make builds it)"; echo "0 passed, 1 failed"; exit 1
fi
# A sanitizer build of the library needs its runtime loaded first: preload it (clang's), and
# leave leak checking off (the interpreter itself keeps memory to the end).
PRELOAD=""
if nm -D "$LIB" 2>/dev/null | grep -q __asan_init; then
    PRELOAD=$(${CLANG:-clang} -print-file-name=libclang_rt.asan-x86_64.so 2>/dev/null)
    if [ ! -f "$PRELOAD" ]; then
        echo "SKIPPED: $LIB is built with AddressSanitizer and its runtime is not found"
        echo "0 passed, 0 failed"; exit 0
    fi
fi
LD_PRELOAD="$PRELOAD" ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
    KVPLACE_LIB="$LIB" KVPLACE="$KVPLACE" PYTHONPATH="python${PYTHONPATH:+:$PYTHONPATH}" \
    "$PY" tests/python/test_kvplace.py
