#!/usr/bin/env python3
"""Writes the spec of one search of bench/search.sh.

Usage: spec.py --out OUT.yaml --trials N [--epochs E] --seed S SETTING.yaml [FRAGMENT.yaml...]

The setting's spec (bench/search/settings/) with each fragment
(bench/search/variants/) merged into it in turn, key by key: a mapping of a
fragment is merged into the mapping it meets, anything else replaces what
it meets. search.trials, search.seed and, with --epochs, training.epochs
are then set. OUT gets the spec as YAML, OUT with .json for .yaml the same
as JSON (what bench/search/report.py reads).
"""
import argparse
import json
import sys

import yaml


def merge(base, more, where=""):
    out = dict(base)
    for k, v in more.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v, f"{where}{k}.")
        elif isinstance(v, dict) and k in out:
            raise ValueError(f"{where}{k}: a mapping cannot replace {out[k]!r}")
        else:
            out[k] = v
    return out


def load(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a mapping")
    return doc


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--trials", type=int, required=True)
    p.add_argument("--epochs", type=int, help="default: the setting's")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("setting")
    p.add_argument("fragments", nargs="*")
    args = p.parse_args()
    if not args.out.endswith(".yaml"):
        p.error("--out must end with .yaml")
    try:
        spec = load(args.setting)
        sources = [args.setting]
        for frag in args.fragments:
            spec = merge(spec, load(frag))
            sources.append(frag)
        spec = merge(spec, {"search": {"trials": args.trials, "seed": args.seed}})
        if args.epochs is not None:
            spec = merge(spec, {"training": {"epochs": args.epochs}})
    except (OSError, ValueError, yaml.YAMLError) as e:
        print(f"spec.py: {e}", file=sys.stderr)
        sys.exit(2)
    with open(args.out, "w") as f:
        epochs = (spec.get("training") or {}).get("epochs")
        f.write(f"# {' + '.join(sources)}; trials {args.trials}, epochs {epochs}, seed {args.seed}\n")
        yaml.safe_dump(spec, f, sort_keys=False, default_flow_style=None)
    with open(args.out[:-len(".yaml")] + ".json", "w") as f:
        json.dump(spec, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
