# Sourced by the CLI tests (tests/cli_*.sh), after they set NAME: $KVPLACE made absolute, a
# temporary directory $T removed at exit, the counters with ok and bad (which shows the
# stderr of the last command), kv (runs kvplace keeping $T/out, $T/err and $rc), lines, and
# refused (a failure as the CLI must fail).
# Each test ends with: echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]
KVPLACE=${KVPLACE:-build/kvplace}
case $KVPLACE in /*) ;; *) KVPLACE=$(pwd)/$KVPLACE ;; esac
T=$(mktemp -d "${TMPDIR:-/tmp}/kvp_$NAME.XXXXXX") || exit 1
# chmod first: a test may leave an unreadable file or directory behind on purpose
trap 'chmod -R u+rwx "$T" 2>/dev/null; rm -rf "$T"' 0
trap 'exit 1' INT TERM
pass=0
fail=0

bad() {
    fail=$((fail + 1))
    printf 'FAILED: %s\n' "$*"
    if [ -s "$T/err" ]; then sed 's/^/    stderr: /' "$T/err" | head -n 5; fi
}
ok() { pass=$((pass + 1)); }
# kv ARGS...: runs kvplace, keeping stdout, stderr and the exit status.
kv() {
    "$KVPLACE" "$@" >"$T/out" 2>"$T/err"
    rc=$?
}
lines() { wc -l <"$1" | tr -d ' '; }

# refused WHAT STATUS NEEDLE ARGS...: kvplace ARGS must exit STATUS with one line on stderr,
# "kvplace: ...", containing NEEDLE, and nothing on stdout; where the test keeps its report
# files in the directory $T/reports, nothing may be left there (it is emptied after).
refused() {
    what=$1 want=$2 needle=$3
    shift 3
    "$KVPLACE" "$@" >"$T/stdout" 2>"$T/err"
    rc=$?
    if [ "$rc" -ne "$want" ]; then bad "$what: exit $rc, wanted $want"
    elif [ -s "$T/stdout" ]; then bad "$what: wrote to stdout"
    elif [ "$(lines "$T/err")" -ne 1 ]; then bad "$what: stderr has $(lines "$T/err") lines"
    elif ! grep -q '^kvplace: ' "$T/err"; then bad "$what: no kvplace: prefix"
    elif ! grep -qF -- "$needle" "$T/err"; then bad "$what: stderr does not name \"$needle\""
    elif [ -d "$T/reports" ] && [ -n "$(ls -A "$T/reports")" ]; then
        bad "$what: left $(ls -A "$T/reports")"
    else ok
    fi
    [ -d "$T/reports" ] && rm -f "$T/reports/"* "$T/reports/".[!.]* 2>/dev/null
    return 0
}

# npy FILE DESCR FORTRAN SHAPE: a .npy version 1.0 prelude and header (data is appended after).
npy() {
    dict="{'descr': '$2', 'fortran_order': $3, 'shape': $4, }"
    len=$((${#dict} + 1))
    printf '\223NUMPY\001\000' >"$1"
    printf "\\$(printf %03o $((len % 256)))\\$(printf %03o $((len / 256)))" >>"$1"
    printf '%s\n' "$dict" >>"$1"
}
