"""Optuna's search overhead per trial, measured as bench/overhead measures
floodtune's: a study on a SQLite file, TPE, two worker processes sharing the
file, and an objective that trains nothing.

Each worker process loads the study with its own TPESampler (seeded with the
study's seed plus the worker's index, as floodtune seeds its workers) and
runs study.optimize; optuna.study.MaxTrialsCallback stops both at --trials
trials. The objective suggests the same two parameters as floodtune's
benchmark (flood_level uniform in [0, 1.5], lr log-uniform in [0.01, 0.3]),
records the trial's seed as a user attribute, reports --epochs intermediate
values (trial.report), records the same eleven user attributes as
floodtune's built-in objective, and returns the value of the same toy
surface plus noise.

A trial's overhead is the time its worker process took from finishing its
previous trial (the end of its callbacks) to finishing this one, from the
start of study.optimize for the first. The means over trial numbers 90-109
and over the last 20 trials are printed, with their parts, and the last line
is

    RESULT	optuna	sqlite	<ms at 100>	<ms at N>	<N>

Usage: python3 optuna_overhead.py --storage sqlite:////tmp/x.db [--trials 1000]
"""

import argparse
import math
import multiprocessing
import os
import random
import sys
import time

import optuna

STUDY = "overhead"


def surface(level, lr):
    d = math.log(lr / 0.1)
    return 0.9 - 0.05 * (level - 0.94) ** 2 - 0.02 * d * d


def worker(index, args, out):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=args.seed + index)
    study = optuna.load_study(study_name=STUDY, storage=args.storage, sampler=sampler)
    times = {}  # trial number -> [start, sampled, reported, returned]
    rows = []
    state = {"prev": 0.0}

    def objective(trial):
        t_start = time.perf_counter()
        level = trial.suggest_float("flood_level", 0.0, 1.5)
        lr = trial.suggest_float("lr", 0.01, 0.3, log=True)
        rng = random.Random(args.seed * 1_000_003 + trial.number)
        trial.set_user_attr("seed", rng.getrandbits(63))
        t_sampled = time.perf_counter()
        value = surface(level, lr) + 0.005 * rng.gauss(0, 1)
        curve = []
        for e in range(1, args.epochs + 1):
            v = value * (1 - math.exp(-3 * e / args.epochs)) / (1 - math.exp(-3))
            curve.append(float("%.6g" % v))
            trial.report(v, e)
        t_reported = time.perf_counter()
        for k, v in {
            "ascent_fraction": 0.3 * rng.random(), "epochs": args.epochs, "seconds": 20.0,
            "test_acc": value + 0.01, "test_loss": 0.5 + rng.random(), "train_loss": 1 + rng.random(),
            "train_acc": 0.8, "val_loss": 0.5 + rng.random(), "val_acc": value,
            "train_loss_curve": curve, "val_loss_curve": curve,
        }.items():
            trial.set_user_attr(k, v)
        times[trial.number] = [t_start, t_sampled, t_reported, time.perf_counter()]
        return value

    def record(study, frozen):
        now = time.perf_counter()
        t = times.pop(frozen.number)
        prev = state["prev"]
        ms = lambda a, b: (b - a) * 1e3
        rows.append((frozen.number, frozen.state.name, ms(prev, now), ms(prev, t[0]), ms(t[0], t[1]),
                     ms(t[1], t[2]), ms(t[2], t[3]), ms(t[3], now)))
        state["prev"] = now

    stop = optuna.study.MaxTrialsCallback(args.trials, states=None)
    state["prev"] = time.perf_counter()
    study.optimize(objective, callbacks=[stop, record])
    out.put(rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--storage", required=True, help="sqlite:///PATH of a new file")
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--workers", type=int, default=2, help="worker processes")
    p.add_argument("--epochs", type=int, default=10, help="intermediate values per trial")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--csv", help="write the per-trial figures to this CSV file")
    args = p.parse_args()
    if args.trials < 110:
        sys.exit("optuna_overhead: want --trials >= 110")
    path = args.storage.removeprefix("sqlite:///")
    if args.storage.startswith("sqlite:///") and os.path.exists(path):
        sys.exit("optuna_overhead: %s exists: give a new file" % path)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name=STUDY, storage=args.storage, direction="maximize")
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(i, args, out)) for i in range(args.workers)]
    t0 = time.perf_counter()
    for proc in procs:
        proc.start()
    rows = []
    for _ in procs:
        rows += out.get()
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            sys.exit("optuna_overhead: a worker exited with status %d" % proc.exitcode)
    total = time.perf_counter() - t0

    by_number = {r[0]: r for r in rows}
    missing = [n for n in range(args.trials) if n not in by_number]
    bad = [r for r in rows if r[1] != "COMPLETE"]
    if missing or bad:
        sys.exit("optuna_overhead: trials missing %s, not complete %s" % (missing[:10], bad[:10]))
    n = args.trials
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("number,cycle_ms,before_ms,sample_ms,report_ms,attrs_ms,after_ms\n")
            for num in range(n):
                f.write("%d,%s\n" % (num, ",".join("%.3f" % x for x in by_number[num][2:])))

    def mean(lo, hi, col):
        return sum(by_number[i][col] for i in range(lo, hi)) / (hi - lo)

    w100, wn = (90, 110), (n - 20, n)
    print("optuna %s, sqlite: %d trials (%d run), %d worker processes, %d intermediate values a trial, "
          "%.1f s with the processes' start (%.0f trials/s)"
          % (optuna.__version__, n, len(rows), args.workers, args.epochs, total, len(rows) / total))
    print("  ms a trial (mean)                at 100 (trials %d-%d)   at %d (trials %d-%d)"
          % (w100[0], w100[1] - 1, n, wn[0], wn[1] - 1))
    for what, col in [("whole trial", 2), ("  create the trial", 3), ("  sample, params, seed", 4),
                      ("  intermediate values", 5), ("  attributes", 6), ("  finish, callbacks", 7)]:
        print("  %-38s %8.2f %27.2f" % (what, mean(*w100, col), mean(*wn, col)))
    print("  by hundreds of trials, mean ms: "
          + " ".join("%.1f" % mean(lo, min(lo + 100, n), 2) for lo in range(0, n, 100)))
    print("RESULT\toptuna\tsqlite\t%.3f\t%.3f\t%d" % (mean(*w100, 2), mean(*wn, 2), n))


if __name__ == "__main__":
    main()
