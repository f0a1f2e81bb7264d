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

# The flood level chosen per seed on validation accuracy (ties to the smaller
# b), as in the flooding paper, against plain training.
groups = defaultdict(lambda: defaultdict(list))
for (ds, noise, method, b), rs in rows.items():
    for r in rs:
        groups[(ds, noise, method)][r["seed"]].append(r)
for (ds, noise, method), by_seed in sorted(groups.items()):
    chosen = []
    for seed, rs in sorted(by_seed.items()):
        best = max(rs, key=lambda r: (r["val_acc"], -r["flood_level"]))
        chosen.append(best)
    plain = [r for rs in by_seed.values() for r in rs if r["flood_level"] == 0]
    print()
    print(f"{ds}, noise {noise}, {method}: b chosen on validation per seed: "
          f"test acc {fmt([r['test_acc'] for r in chosen], 100)} %, test loss {fmt([r['test_loss'] for r in chosen], 1, 3)}, "
          f"chosen b {[r['flood_level'] for r in chosen]}")
    if plain:
        print(f"{ds}, noise {noise}, {method}: plain training (b = 0): "
              f"test acc {fmt([r['test_acc'] for r in plain], 100)} %, test loss {fmt([r['test_loss'] for r in plain], 1, 3)}")
