#!/usr/bin/env python3
"""The report of bench/search.sh: time to target of whole searches.

Usage: report.py RUN.json...

Each RUN.json describes one search (bench/search.sh writes it): its setting,
seed, variant, tool (floodtune or optuna), start and end (Unix seconds: the
start taken just before `study create` or the peer's `create`), and the
files, relative to it, of its trials (`floodtune study trials --format
json`, or `optuna_torch.py summary`), its best trial (`floodtune study best
--format json`; the summary's for the peer) and its spec as JSON.

Per setting and seed, the target T is the best trial value of optuna-tpe
(the last epoch's validation accuracy, over its whole budget), and T99 is
0.99·T. A search's time to T is the earliest moment, from its start, at
which it held a trial whose value, under its own objective, is at least T:
for a search that values a trial at its last epoch (the peers, and
floodtune but for epoch_value: best), the completion of the first complete
trial whose value is ≥ T; for floodtune with epoch_value: best, the report
of the first epoch whose validation accuracy is ≥ T in a trial that
completed (its value, the best of its epochs, is then ≥ T, and the model of
that epoch is the one whose test figures the trial records). Pruned and
failed trials hold no value. A report's moment is the
trial's start plus the seconds from it to the report: the peer's user
attribute `elapsed` from the trial's datetime_start; floodtune's
`elapsed_curve` from the start of the trial's run, which is after the
dataset has loaded (the first trials wait for it), taken as
datetime_complete less the run's `seconds` for a complete trial and as
datetime_start otherwise. A trial without per-epoch times (a floodtune
that does not record them) has its epochs spread evenly between its
datetime_start and datetime_complete, and the search's times are marked as
estimated. The chosen trial is floodtune's `study best` and the peer's best
complete trial; its test accuracy is, for floodtune with epoch_value: best,
that of its best epoch's model (best_test_acc), else its final model's.

Then, per floodtune search and peer, the ratio of their times to T and to
T99, and per setting a summary over the seeds: medians of times and ratios,
mean ± sd of the chosen trial's test accuracy, and the goal: floodtune's
time to T at most 0.33× the faster peer's (median ratio) with a chosen test
accuracy no worse than that peer's (mean over the seeds). Markdown on
standard output. Python's standard library only.
"""
import json
import math
import os
import statistics
import sys
from datetime import datetime

GOAL_RATIO = 0.33
# The searches of bench/search.sh in its order; others follow by name.
ORDER = ["floodtune-current", "floodtune-flood-aware", "floodtune-flood-aware-prior",
         "optuna-tpe", "optuna-tpe-hyperband", "optuna-tpe-sh"]
EPS = 1e-12  # accuracies are k/n; the comparison must not depend on rounding
INF = math.inf


class ReportError(Exception):
    pass


def ts(iso):
    """Unix seconds of an ISO 8601 time (floodtune's ...Z, Optuna's with an offset)."""
    if not iso:
        return None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ReportError(f"{path}: {e}") from e


def number(v):
    """A user attribute as a float: floodtune's are strings."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def curve(v):
    """A per-epoch list: floodtune's JSON array strings, the peer's lists."""
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            return None
    if not isinstance(v, list):
        return None
    return [float("nan") if x is None else float(x) for x in v]


def epoch_reports(t, tool, search_end):
    """The (Unix time, validation accuracy) of each epoch a trial reported,
    and whether the times are estimated."""
    iv = t.get("intermediate") or {}
    vals = [iv[k] for k in sorted(iv, key=int)]
    ua = t.get("user_attrs") or {}
    start, complete = ts(t.get("datetime_start")), ts(t.get("datetime_complete"))
    if start is None or not vals:
        return [], False
    elapsed = curve(ua.get("elapsed_curve" if tool == "floodtune" else "elapsed"))
    if tool == "optuna" and curve(ua.get("val_acc_curve")) is not None:
        vals = curve(ua["val_acc_curve"])
    if elapsed is not None and len(elapsed) == len(vals):
        origin = start
        seconds = number(ua.get("seconds"))
        if tool == "floodtune" and complete is not None and seconds is not None and seconds >= elapsed[-1]:
            origin = max(start, complete - seconds)
        return [(origin + e, v) for e, v in zip(elapsed, vals)], False
    end = complete if complete is not None else search_end
    n = len(vals)
    return [(start + (k + 1) / n * (end - start), v) for k, v in enumerate(vals)], True


def load_run(path):
    run = load_json(path)
    base = os.path.dirname(path)
    data = load_json(os.path.join(base, run["trials_file"]))
    trials = data["trials"] if isinstance(data, dict) else data
    best = data.get("best") if isinstance(data, dict) else None
    if run.get("best_file"):
        best = load_json(os.path.join(base, run["best_file"]))
    spec = load_json(os.path.join(base, run["spec_file"]))
    run.update(trials=trials, best=best, spec=spec)
    events, estimated, epochs = [], False, 0
    best_epoch = run["tool"] == "floodtune" and (spec.get("search") or {}).get("epoch_value") == "best"
    for t in trials:
        ev, est = epoch_reports(t, run["tool"], run["end"])
        if t.get("state") != "complete" or t.get("value") is None:
            ev = []
        elif not best_epoch and ev:
            done = ts(t.get("datetime_complete"))
            ev = [(done if done is not None else ev[-1][0], float(t["value"]))]
        events += ev
        estimated |= est and bool(ev)
        trained = number((t.get("user_attrs") or {}).get("trained_epochs"))
        epochs += int(trained) if trained is not None else len(t.get("intermediate") or {})
    run.update(events=sorted(events), estimated=estimated, epochs=epochs)
    run["chosen"] = chosen(run)
    return run


def chosen(run):
    best = run["best"]
    if not best or best.get("value") is None:
        return None
    ua = best.get("user_attrs") or {}
    test = number(ua.get("test_acc"))
    if run["tool"] == "floodtune" and (run["spec"].get("search") or {}).get("epoch_value") == "best":
        if number(ua.get("best_test_acc")) is not None:
            test = number(ua["best_test_acc"])
    params = best.get("params") or {}
    training = run["spec"].get("training") or {}
    return {
        "number": best["number"],
        "b": params.get("flood_level", training.get("flood_level", 0.0)),
        "lr": params.get("lr", training.get("lr")),
        "value": best["value"],
        "test": test,
    }


def time_to(run, target):
    """Seconds from the search's start to its first report ≥ target, or None."""
    if target is None:
        return None
    for when, v in run["events"]:
        if v >= target - EPS:
            return when - run["start"]
    return None


# Formatting.

def secs(x):
    return "–" if x is None or x == INF else f"{x:.1f}"


def pct(x):
    return "–" if x is None else f"{100 * x:.2f}%"


def ratio_str(r):
    if r is None:
        return "–"
    value, bound = r
    if value == INF:
        return "∞"
    return f"{'<' if bound else ''}{value:.2f}×"


def ratio(ft, peer):
    """floodtune's time to a target over the peer's, per seed: (value, is an
    upper bound), ∞ when floodtune never reached it, an upper bound (its
    time over the peer's wall time) when only the peer never did, None when
    neither did."""
    t, p = ft["t"], peer["t"]
    if t is None and p is None:
        return None
    if t is None:
        return (INF, False)
    if p is None:
        return (t / peer["wall"], True)
    return (t / p, False) if p > 0 else (INF, False)


def median_ratio(rs):
    """The median over seeds of ratios (None counts as ∞); an upper bound
    when any of them is one."""
    if not rs:
        return None
    values = [INF if r is None else r[0] for r in rs]
    return (statistics.median(values), any(r is not None and r[1] for r in rs))


def median_time(ts_):
    return statistics.median([INF if t is None else t for t in ts_]) if ts_ else None


def describe(spec):
    d, m, tr, s = spec.get("dataset", {}), spec.get("model", {}), spec.get("training", {}), spec.get("search", {})
    sizes = f"{d.get('train_size')} train / {d.get('val_size')} validation"
    space = []
    for name, p in (spec.get("space") or {}).items():
        space.append(f"{name}{' log' if p.get('log') else ''} [{p.get('low')}, {p.get('high')}]")
    return (f"{d.get('name')}, {100 * d.get('label_noise', 0):g}% label noise, {sizes}; "
            f"MLP {'-'.join(str(h) for h in m.get('hidden', []))}; {tr.get('optimizer')} lr {tr.get('lr')}, "
            f"batch {tr.get('batch_size')}, {tr.get('epochs')} epochs; {s.get('trials')} trials; "
            f"TPE over {', '.join(space)}")


def main():
    if len(sys.argv) < 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        sys.exit(2)
    try:
        runs = [load_run(p) for p in sys.argv[1:]]
    except (ReportError, KeyError, TypeError, ValueError) as e:
        print(f"report.py: {e}", file=sys.stderr)
        sys.exit(1)

    settings = list(dict.fromkeys(r["setting"] for r in runs))
    any_estimated = False
    for setting in settings:
        rs = [r for r in runs if r["setting"] == setting]
        variants = sorted(set(r["variant"] for r in rs),
                          key=lambda v: (ORDER.index(v) if v in ORDER else len(ORDER), v))
        ft_variants = [v for v in variants if any(r["tool"] == "floodtune" for r in rs if r["variant"] == v)]
        peer_variants = [v for v in variants if v not in ft_variants]
        seeds = sorted(set(r["seed"] for r in rs))
        generic = next((r for r in rs if r["variant"] == "optuna-tpe"), None) or next(
            (r for r in rs if r["variant"] == "floodtune-current"), rs[0])
        print(f"## {setting}")
        print()
        print(describe(generic["spec"]) + "; 2 workers.")
        print()
        rows = {}  # (variant, seed) -> per-seed figures
        for seed in seeds:
            by_v = {r["variant"]: r for r in rs if r["seed"] == seed}
            ref = by_v.get("optuna-tpe")
            note = "optuna-tpe's best"
            if ref is None or ref["chosen"] is None:
                peers = [by_v[v] for v in peer_variants if v in by_v and by_v[v]["chosen"]]
                ref = max(peers, key=lambda r: r["chosen"]["value"]) if peers else None
                note = f"{ref['variant']}'s best (no optuna-tpe search)" if ref else None
            target = ref["chosen"]["value"] if ref else None
            t99 = 0.99 * target if target is not None else None
            if target is None:
                print(f"### seed {seed}: no target (no peer search with a complete trial)")
            else:
                print(f"### seed {seed}: T = {target:.4f} ({note}, trial {ref['chosen']['number']}), T99 = {t99:.4f}")
            print()
            print("| search | time to T s | time to T99 s | wall s | epochs trained | chosen trial | its b | its lr | its val value | its test acc |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for v in variants:
                r = by_v.get(v)
                if r is None:
                    continue
                f = {"t": time_to(r, target), "t99": time_to(r, t99), "wall": r["wall"], "epochs": r["epochs"],
                     "test": r["chosen"]["test"] if r["chosen"] else None}
                rows[(v, seed)] = f
                mark = "*" if r["estimated"] else ""
                any_estimated |= r["estimated"]
                c = r["chosen"]
                if c:
                    lr = "–" if c["lr"] is None else f"{c['lr']:.4f}"
                    ch = f"{c['number']} | {c['b']:.3f} | {lr} | {c['value']:.4f} | {pct(c['test'])}"
                else:
                    ch = "– | – | – | – | –"
                print(f"| {v} | {secs(f['t'])}{mark} | {secs(f['t99'])}{mark} | {r['wall']:.1f} | {r['epochs']} | {ch} |")
            print()
            fts = [v for v in ft_variants if (v, seed) in rows]
            pvs = [v for v in peer_variants if (v, seed) in rows]
            if fts and pvs:
                head = " | ".join(f"÷ {p}: to T | to T99" for p in pvs)
                print(f"| floodtune search | {head} |")
                print("|---|" + "---|---|" * len(pvs))
                for v in fts:
                    cells = []
                    for p in pvs:
                        a, b = rows[(v, seed)], rows[(p, seed)]
                        cells.append(ratio_str(ratio(a, b)))
                        cells.append(ratio_str(ratio({"t": a["t99"]}, {"t": b["t99"], "wall": b["wall"]})))
                    print(f"| {v} | " + " | ".join(cells) + " |")
                print()

        # The summary over the seeds.
        print(f"### {setting}: summary over seeds {', '.join(str(s) for s in seeds)}")
        print()

        def figures(v):
            return [rows[(v, s)] for s in seeds if (v, s) in rows]

        def ratios(v, p, key):
            out = []
            for s in seeds:
                if (v, s) in rows and (p, s) in rows:
                    a, b = rows[(v, s)], rows[(p, s)]
                    out.append(ratio({"t": a[key]}, {"t": b[key], "wall": b["wall"]}))
            return out

        def test_stats(v):
            xs = [f["test"] for f in figures(v) if f["test"] is not None]
            if not xs:
                return None, None, "–"
            m = statistics.mean(xs)
            sd = statistics.stdev(xs) if len(xs) > 1 else None
            return m, sd, f"{100 * m:.2f}%" + (f" ± {100 * sd:.2f}" if sd is not None else "")

        head = " | ".join(f"÷ {p} (T / T99)" for p in peer_variants)
        print("| search | seeds | reached T | median time to T s | median time to T99 s | median wall s | median epochs | chosen test acc (mean ± sd) |"
              + (f" {head} |" if peer_variants else ""))
        print("|---|---|---|---|---|---|---|---|" + "---|" * len(peer_variants))
        for v in variants:
            fs = figures(v)
            if not fs:
                continue
            reached = sum(f["t"] is not None for f in fs)
            cells = ""
            if peer_variants:
                if v in ft_variants:
                    cells = " " + " | ".join(
                        f"{ratio_str(median_ratio(ratios(v, p, 't')))} / {ratio_str(median_ratio(ratios(v, p, 't99')))}"
                        for p in peer_variants) + " |"
                else:
                    cells = " " + " | ".join("" for _ in peer_variants) + " |"
            print(f"| {v} | {len(fs)} | {reached}/{len(fs)} | {secs(median_time([f['t'] for f in fs]))} | "
                  f"{secs(median_time([f['t99'] for f in fs]))} | {statistics.median(f['wall'] for f in fs):.1f} | "
                  f"{statistics.median(f['epochs'] for f in fs):g} | {test_stats(v)[2]} |{cells}")
        print()

        # The goal, against the faster peer.
        if not peer_variants or not ft_variants:
            print("goal: not judged (it needs a floodtune search and a peer search)")
            print()
            continue
        faster = min(peer_variants, key=lambda p: (median_time([f["t"] for f in figures(p)]),
                                                   statistics.median(f["wall"] for f in figures(p))))
        ft_peer = median_time([f["t"] for f in figures(faster)])
        peer_mean, _, peer_test = test_stats(faster)
        print(f"Goal: floodtune's time to T ≤ {GOAL_RATIO}× the faster peer's ({faster}: median {secs(ft_peer)} s) "
              f"with a chosen test accuracy no worse than its {peer_test}:")
        print()
        for v in ft_variants:
            mr = median_ratio(ratios(v, faster, "t"))
            mean, _, text = test_stats(v)
            fast = mr is not None and mr[0] <= GOAL_RATIO
            good = mean is not None and peer_mean is not None and mean >= peer_mean - EPS
            verdict = "**holds**" if fast and good else "does not hold"
            print(f"- {v}: time to T {ratio_str(mr)} ({'✓' if fast else '✗'}), chosen test accuracy {text} "
                  f"against {peer_test} ({'✓' if good else '✗'}): {verdict}")
        print()

    print("Times are seconds from a search's start (just before its `study create`, or the peer's `create`). "
          "T: the best trial value of optuna-tpe (its last epoch's validation accuracy); T99 = 0.99·T. "
          "Time to T: the first report of an epoch whose validation accuracy is ≥ T, by any trial, timed as the "
          "trial's start plus its own seconds to that report (floodtune's count from its run's start, taken as "
          "the trial's end less the run's seconds). "
          "“–”: never. A ratio “<x” is an upper bound (the peer never reached the target: its wall time "
          "stands for its time); “∞”: floodtune never reached it.")
    if any_estimated:
        print()
        print("\\* estimated: those trials recorded no per-epoch times; their epochs are spread evenly between "
              "the trial's start and its end (which includes the final evaluations).")


if __name__ == "__main__":
    main()
