#!/usr/bin/env python3
"""Compare a floodtune sweep with the PyTorch reference runs of this directory.

Usage:
  bench/reference/compare.py OUT.jsonl   the sweep's `floodtune train --json` lines
                                         (bench/sweep.sh) against the reference
  bench/reference/compare.py --check     the CSV files against flooding-synthetic.md,
                                         the text they were transcribed from

The reference setting is found from the sweep's dataset and label noise. Only batch
flooding rows (flood = "flood") are compared; "chosen on validation" picks, per seed,
the level with the best validation accuracy (ties to the smaller b), as the reference
does.
"""
import csv
import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
LEVELS = HERE / "flooding-synthetic-levels.csv"
SETTINGS = HERE / "flooding-synthetic-settings.csv"
SOURCE = HERE / "flooding-synthetic.md"


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def b_key(x):
    return round(float(x), 6)


def compare(jsonl):
    runs = []
    for line in open(jsonl):
        line = line.strip()
        if line:
            r = json.loads(line)
            if r.get("flood", "flood") == "flood":
                runs.append(r)
    if not runs:
        sys.exit(f"compare: no batch-flooding runs in {jsonl}")
    keys = {(r["dataset"], b_key(r["label_noise"])) for r in runs}
    if len(keys) != 1:
        sys.exit(f"compare: {jsonl} mixes settings {sorted(keys)}")
    dataset, noise = keys.pop()
    setting = next((s for s in read_csv(SETTINGS)
                    if s["dataset"] == dataset and b_key(s["label_noise"]) == noise), None)
    if setting is None:
        sys.exit(f"compare: no reference for {dataset} with label noise {noise} in {SETTINGS.name}")
    name = setting["setting"]
    ref = {b_key(r["b"]): r for r in read_csv(LEVELS) if r["setting"] == name}

    by_level = defaultdict(list)
    by_seed = defaultdict(list)
    for r in runs:
        by_level[b_key(r["flood_level"])].append(r)
        by_seed[r["seed"]].append(r)

    print(f"Against the PyTorch reference {name} (bench/reference/{SOURCE.name}: "
          f"{setting['optimizer']} lr {setting['lr']}, batch {setting['batch_size']}, "
          f"{setting['epochs']} epochs, {setting['seeds']} seeds); floodtune: "
          f"{len(by_seed)} seeds")
    print()
    print("| b | floodtune test acc | reference test acc | floodtune final train loss | reference "
          "| floodtune test loss | reference |")
    print("|---|---|---|---|---|---|---|")
    for b in sorted(by_level):
        if b not in ref:
            continue
        rs, f = by_level[b], ref[b]
        print(f"| {f['b']} | {statistics.mean(r['test_acc'] for r in rs) * 100:.1f}% "
              f"| {float(f['test_acc_pct']):.1f}% "
              f"| {statistics.mean(r['train_loss'] for r in rs):.3f} | {f['final_train_loss']} "
              f"| {statistics.mean(r['test_loss'] for r in rs):.3f} | {f['test_loss']} |")
    chosen = [max(rs, key=lambda r: (r["val_acc"], -r["flood_level"])) for _, rs in sorted(by_seed.items())]
    acc = [r["test_acc"] * 100 for r in chosen]
    acc = f"{statistics.mean(acc):.1f}%" + (f" ± {statistics.stdev(acc):.1f}" if len(acc) > 1 else "")
    print(f"| chosen on validation | {acc} "
          f"| {float(setting['chosen_test_acc_pct']):.1f}% ± {setting['chosen_test_acc_sd']} | | "
          f"| {statistics.mean(r['test_loss'] for r in chosen):.3f} | {setting['chosen_test_loss']} |")
    missing = sorted(b for b in by_level if b not in ref)
    if missing:
        print()
        print(f"No reference figures at b = {', '.join(f'{b:g}' for b in missing)} "
              f"(reference levels: {', '.join(r['b'] for r in read_csv(LEVELS) if r['setting'] == name)}).")


def check():
    """Check the CSV files against the tables and summary lines of the source text."""
    text = SOURCE.read_text()
    sections = dict(re.findall(r"^## (\S+)\n(.*?)(?=^## |\Z)", text, re.S | re.M))
    bad = []
    levels = read_csv(LEVELS)
    for s in read_csv(SETTINGS):
        body = sections.get(s["setting"])
        if body is None:
            bad.append(f"{s['setting']}: no section in {SOURCE.name}")
            continue
        m = re.search(r"settings: hidden (\d+x\d+), (\w+) lr ([\d.]+), batch (\d+), (\d+) epochs, "
                      r"label noise ([\d.]+), (\d+) train / (\d+) val / (\d+) test", body)
        want = dict(zip(["hidden", "optimizer", "lr", "batch_size", "epochs", "label_noise",
                         "train_size", "val_size", "test_size"], m.groups() if m else []))
        for k, v in want.items():
            if s[k] != v:
                bad.append(f"{s['setting']}: {k} {s[k]!r}, source {v!r}")
        m = re.search(r"mean over (\d+) seeds", text)
        if not m or s["seeds"] != m.group(1):
            bad.append(f"{s['setting']}: seeds {s['seeds']!r}, source {m and m.group(1)!r}")
        noisy_val = re.search(r"train \(and, for (\w+), validation\) labels carry", text)
        if (s["val_labels_noisy"] == "true") != (noisy_val is not None and noisy_val.group(1) == s["dataset"]):
            bad.append(f"{s['setting']}: val_labels_noisy {s['val_labels_noisy']!r} disagrees with the source")
        for kind in ("plain", "chosen"):
            m = re.search(rf"- {'plain training' if kind == 'plain' else 'b chosen'}.*?test accuracy "
                          rf"([\d.]+)% ± ([\d.]+), test loss ([\d.]+)(?:, final train loss ([\d.]+))?"
                          rf"(?:, chosen b \[([^\]]*)\])?", body)
            got = [s[f"{kind}_test_acc_pct"], s[f"{kind}_test_acc_sd"], s[f"{kind}_test_loss"]]
            src = list(m.groups()[:3]) if m else []
            if kind == "plain":
                got.append(s["plain_final_train_loss"])
                src.append(m.group(4) if m else None)
            else:
                got.append(s["chosen_b"])
                src.append(m.group(5).replace(", ", ";") if m else None)
            if got != src:
                bad.append(f"{s['setting']} {kind}: {got}, source {src}")
        rows = re.findall(r"^\| ([\d.]+) \| ([\d.]+)% \| ([\d.]+)% \| ([\d.]+) \| ([\d.]+) \|$", body, re.M)
        mine = [(r["b"], r["test_acc_pct"], r["val_acc_pct"], r["final_train_loss"], r["test_loss"])
                for r in levels if r["setting"] == s["setting"]]
        if rows != mine:
            bad.append(f"{s['setting']}: levels differ from the source table")
    if bad:
        sys.exit("check: " + "\n       ".join(bad))
    print(f"check: {LEVELS.name} and {SETTINGS.name} agree with {SOURCE.name}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        check()
    elif len(sys.argv) == 2 and not sys.argv[1].startswith("-"):
        compare(sys.argv[1])
    else:
        sys.exit(__doc__.strip())
