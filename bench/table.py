#!/usr/bin/env python3
"""Summarise `floodtune train --json` lines: one row per flood level, mean ± sd over seeds."""
import json
import statistics
import sys
from collections import defaultdict


def fmt(xs, scale=1.0, digits=2):
    xs = [x * scale for x in xs]
    if len(xs) == 1:
        return f"{xs[0]:.{digits}f}"
    return f"{statistics.mean(xs):.{digits}f} ± {statistics.stdev(xs):.{digits}f}"


rows = defaultdict(list)
for line in open(sys.argv[1]):
    line = line.strip()
    if line:
        r = json.loads(line)
        rows[(r["dataset"], r["label_noise"], r["flood"], r["flood_level"])].append(r)

print("| dataset | noise | method | b | seeds | test acc % | test loss | val acc % | final train loss | ascent % | epochs | s/run |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for (ds, noise, method, b), rs in sorted(rows.items()):
    print(f"| {ds} | {noise} | {method} | {b} | {len(rs)} | {fmt([r['test_acc'] for r in rs], 100)} | "
          f"{fmt([r['test_loss'] for r in rs], 1, 3)} | {fmt([r['val_acc'] for r in rs], 100)} | "
          f"{fmt([r['train_loss'] for r in rs], 1, 3)} | {fmt([r['ascent_fraction'] for r in rs], 100, 1)} | "
          f"{rs[0]['epochs']} | {statistics.mean(r['seconds'] for r in rs):.0f} |")
