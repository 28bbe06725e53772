import csv, os, sys
# The 54-point table of sweep.sh's runs: each online policy over static, steer over bound.
d = sys.argv[1] if len(sys.argv) > 1 else "."
rows = []
for w in ("counted", "not_counted"):
    for v in ("low", "actual", "high"):
        for s in ("0.4", "0.5", "0.6", "0.8", "0.85", "0.9", "topk512", "topk2048", "topk8192"):
            r = {x["policy"].split(":")[0]: x for x in csv.DictReader(open(os.path.join(d, f"r_{w}_{v}_{s}.csv")))}
            st = float(r["static"]["throughput_tok_s"])
            b = float(r["bound"]["throughput_tok_s"])
            rows.append((w, v, s, {p: float(r[p]["throughput_tok_s"]) / st for p in r},
                         {p: float(r[p]["throughput_tok_s"]) / b for p in r}))
pols = ["reactive", "hot", "balanced", "payback", "steer", "whittle"]
print("| weights | variation | sparsity or topk | " + " | ".join(p + " / static" for p in pols) + " | steer / bound |")
print("|---" * (4 + len(pols)) + "|")
for w, v, s, vs, vb in rows:
    print(f"| {w} | {v} | {s} | " + " | ".join(f"{vs[p]:.3f}" for p in pols) + f" | {vb['steer']:.3f} | {vb['whittle']:.3f} |")
print()
for sub, name in ((rows, "all 54"), ([r for r in rows if not r[2].startswith("topk")], "36 sparsity points"),
                  ([r for r in rows if r[2].startswith("topk")], "18 topk points")):
    for p in pols:
        lo = min(sub, key=lambda r: r[3][p])
        behind = sum(1 for r in sub if r[3][p] < 0.99)
        print(f"- {name}: {p}: lowest over static {lo[3][p]:.4f} at {lo[0]} {lo[1]} {lo[2]}; "
              f"points >1% behind static: {behind} of {len(sub)}")
