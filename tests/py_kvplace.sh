#!/bin/sh
# The Python package's tests (tests/python/test_kvplace.py) against $BUILD/libkvplace.so and
# the CLI $KVPLACE.  Needs a python3 with NumPy (Debian's python3-numpy): the first of
# `python3` and /usr/bin/python3 that imports numpy.  Without one, or when the library is a
# sanitizer build (it cannot be loaded into an uninstrumented interpreter), the tests are
# skipped, and the line says so.
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
if nm -D "$LIB" 2>/dev/null | grep -q __asan_init; then
    echo "SKIPPED: $LIB is built with AddressSanitizer"
    echo "0 passed, 0 failed"; exit 0
fi
KVPLACE_LIB="$LIB" KVPLACE="$KVPLACE" PYTHONPATH="python${PYTHONPATH:+:$PYTHONPATH}" \
    "$PY" tests/python/test_kvplace.py
