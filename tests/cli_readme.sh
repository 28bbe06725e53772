#!/bin/sh
# The README's examples ("Using it") run as printed: each line (continuations joined) runs in a
# fresh directory with `kvplace` on the PATH, at a reduced size: prompt and steps shrink,
# and the study gets a tiny scenario; nothing else of a line changes.  Every line must exit 0
# and the files it names must appear.
# Run by tests/run.sh with KVPLACE=path/to/kvplace; ends with "N passed, N failed".
NAME=cli_readme
. "$(dirname "$0")/harness.sh"
README=$(dirname "$0")/../README.md
mkdir -p "$T/bin" "$T/w"
printf '#!/bin/sh\nexec "%s" "$@"\n' "$KVPLACE" >"$T/bin/kvplace"
chmod +x "$T/bin/kvplace"

# The block after "## Using it", continuations joined, comments dropped.
awk '/^## Using it/ { on = 1; next } on && /^```sh/ { inb = 1; next } inb && /^```/ { exit }
     inb { print }' "$README" |
    sed -e ':a' -e '/\\$/N; s/\\\n *//; ta' -e 's/  *#.*$//' >"$T/lines"
if [ "$(lines "$T/lines")" -ge 8 ]; then ok; else bad "README: only $(lines "$T/lines") example lines"; fi

# reduced size: the only edits
shrink() {
    sed -e 's/prompt=2000/prompt=200/; s/steps=100/steps=20/' \
        -e 's/prompt=32k/prompt=300/; s/steps=1k/steps=20/' \
        -e 's/prompt=4k/prompt=400/; s/steps=256/steps=20/' \
        -e 's/study sparsity/study sparsity --set layers=2 --set prompt=300 --set steps=30 --set hbm_capacity=13276800 --set weight_bytes=10MB --sa-budget 3 -q/'
}
shrink <"$T/lines" >"$T/run"
# the sweep's spec, at a reduced size too (its prompt and steps only)
mkdir -p "$T/w/examples"
sed -e 's/^prompt = 8192/prompt = 300/; s/^steps = 2048/steps = 20/' \
    "$(dirname "$0")/../examples/sweep.ini" >"$T/w/examples/sweep.ini"
while IFS= read -r line; do
    ( cd "$T/w" && PATH="$T/bin:$PATH" sh -c "$line" >"$T/out" 2>"$T/err" )
    rc=$?
    if [ "$rc" -eq 0 ]; then ok; else bad "README line exits $rc: $line"; fi
done <"$T/run"
for f in t.npy a.json b.json b.csv tl.csv pl.npy tl.png tl.svg tl.pdf results/sparsity.md \
    sweep-out/sweep.csv; do
    case $f in *.png|*.svg|*.pdf) command -v gnuplot >/dev/null 2>&1 || continue ;; esac
    if [ -s "$T/w/$f" ]; then ok; else bad "README examples made no $f"; fi
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
