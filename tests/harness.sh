# Sourced by the CLI tests (tests/cli_*.sh), after they set NAME: $KVPLACE made absolute, a
# temporary directory $T removed at exit, the counters with ok and bad (which shows the
# stderr of the last command), kv (runs kvplace keeping $T/out, $T/err and $rc) and lines.
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
