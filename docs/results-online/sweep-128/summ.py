import csv, os, sys
d = sys.argv[1] if len(sys.argv) > 1 else "."
rows = []
for w in ("counted", "not_counted"):
    for v in ("low", "actual", "high"):
        for s in ("0.4", "0.5", "0.6", "0.8", "0.85", "0.9"):
            f = os.path.join(d, f"r_{w}_{v}_{s}.csv")
            try:
                r = {x["policy"]: x for x in csv.DictReader(open(f))}
            except FileNotFoundError:
                continue
            st = float(r["static"]["throughput_tok_s"])
            b = float(r["bound"]["throughput_tok_s"])
            rows.append((w, v, s, {p: float(r[p]["throughput_tok_s"]) / st for p in r}, {p: float(r[p]["throughput_tok_s"]) / b for p in r}))
pols = ["reactive", "hot", "balanced", "payback", "steer"]
print("| weights | variation | sparsity | " + " | ".join(p + " / static" for p in pols) + " | steer / bound |")
print("|---" * (4 + len(pols)) + "|")
for w, v, s, vs, vb in rows:
    print(f"| {w} | {v} | {s} | " + " | ".join(f"{vs[p]:.3f}" for p in pols) + f" | {vb['steer']:.3f} |")
for p in pols:
    lo = min(rows, key=lambda r: r[3][p])
    behind = sum(1 for r in rows if r[3][p] < 0.99)
    print(f"{p}: lowest over static {lo[3][p]:.4f} at {lo[0]} {lo[1]} {lo[2]}; points >1% behind static: {behind} of {len(rows)}")
