#!/usr/bin/env python3
"""The table of bench/peer.sh: one row per run of the study, then the ratios.

Usage: report.py RUN...   where each RUN is TOOL:WORKERS:WALL_SECONDS:TRIALS_JSON[:BEST_JSON]

TRIALS_JSON holds the trials as `floodtune study trials --format json` prints
them (a list) or as `optuna_torch.py summary` does ({"trials": [...], "best":
{...}}); BEST_JSON, when given, is `floodtune study best --format json`.
"""
import json
import sys
from datetime import datetime


def load(spec):
    tool, workers, wall, trials_path, *rest = spec.split(":")
    with open(trials_path) as f:
        data = json.load(f)
    trials = data["trials"] if isinstance(data, dict) else data
    best = data.get("best") if isinstance(data, dict) else None
    if rest:
        with open(rest[0]) as f:
            best = json.load(f)
    complete = [t for t in trials if t["state"] == "complete"]
    durations = []
    for t in complete:
        if t.get("datetime_start") and t.get("datetime_complete"):
            start = datetime.fromisoformat(t["datetime_start"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(t["datetime_complete"].replace("Z", "+00:00"))
            durations.append((end - start).total_seconds())
    wall = float(wall)
    return {
        "tool": tool,
        "workers": int(workers),
        "wall": wall,
        "trials": len(complete),
        "other": len(trials) - len(complete),
        "per_hour": len(complete) / wall * 3600 if wall > 0 else float("nan"),
        "trial_s": sum(durations) / len(durations) if durations else float("nan"),
        "best": best,
    }


def fmt_best(best):
    if not best:
        return "–", "–", "–", "–"
    p = best.get("params", {})
    test = best.get("user_attrs", {}).get("test_acc")
    test = f"{100 * float(test):.2f}%" if test is not None else "–"
    return f"{100 * best['value']:.2f}% (trial {best['number']})", f"{p.get('flood_level', float('nan')):.3f}", f"{p.get('lr', float('nan')):.4f}", test


def main():
    runs = [load(a) for a in sys.argv[1:]]
    print("| tool | workers | trials | wall s | trials/hour | s/trial (one worker) | best val acc | its b | its lr | its test acc |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        acc, b, lr, test = fmt_best(r["best"])
        trials = str(r["trials"]) + (f" (+{r['other']} not complete)" if r["other"] else "")
        print(f"| {r['tool']} | {r['workers']} | {trials} | {r['wall']:.1f} | {r['per_hour']:.1f} | {r['trial_s']:.1f} | {acc} | {b} | {lr} | {test} |")
    print()

    def run(tool, workers):
        return next((r for r in runs if r["tool"] == tool and r["workers"] == workers), None)

    ft, peer = run("floodtune", 2), run("optuna+pytorch", 2)
    if ft and peer:
        print(f"floodtune / Optuna+PyTorch at 2 workers: wall time {ft['wall'] / peer['wall']:.2f}×, "
              f"trials per hour {ft['per_hour'] / peer['per_hour']:.2f}×, "
              f"time per trial {ft['trial_s'] / peer['trial_s']:.2f}×")
        if ft["best"] and peer["best"]:
            d = 100 * (ft["best"]["value"] - peer["best"]["value"])
            print(f"best validation accuracy: floodtune {100 * ft['best']['value']:.2f}%, "
                  f"Optuna+PyTorch {100 * peer['best']['value']:.2f}% ({d:+.2f} points)")
    for tool in ("floodtune", "optuna+pytorch"):
        one, two = run(tool, 1), run(tool, 2)
        if one and two:
            print(f"{tool}, 1 → 2 workers: speed-up {two['per_hour'] / one['per_hour']:.2f}× in trials per hour "
                  f"({one['per_hour']:.1f} → {two['per_hour']:.1f}), time per trial {one['trial_s']:.1f} s → {two['trial_s']:.1f} s")


if __name__ == "__main__":
    main()
