#!/usr/bin/env python3
"""The Optuna + PyTorch peer of a floodtune study, for bench/peer.sh and bench/search.sh.

It runs the study of a floodtune spec (bench/peer/mnist-noise20.yaml,
bench/search/settings/*.yaml) the way floodtune does: the data that
`floodtune dataset export` wrote for the spec (the same split and the same
noisy labels), the spec's MLP with PyTorch's default initialisation, the
spec's optimizer as floodtune's objective/optim.go applies it (sgd and
momentum: torch.optim.SGD, dampening 0; adam: torch.optim.Adam with betas
(0.9, 0.999) and eps 1e-8; weight_decay added to the gradient in both),
flooded loss |J - b| + b on the minibatch mean cross-entropy, the batch
order shuffled every epoch with the trial's seed, the last partial batch
kept. As floodtune does in a trial, it evaluates the validation set after
every epoch (reported to Optuna as the intermediate value), the training
and test sets at the end, and returns the last epoch's validation accuracy
(maximised). TPE with the constant liar (floodtune's default), one sampler
seed per worker (search.seed + worker), the plain-training trial (b = 0)
enqueued first as floodtune's study create does, and a study-wide budget of
search.trials trials shared by every worker process through one RDB
storage.

The pruner is the command line's (--pruner, default none), not the spec's
(whose search.pruner must be none): hyperband is
optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs,
reduction_factor=3), successive_halving
optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3);
after each epoch's report the pruner may stop the trial, which ends as
pruned, without the final evaluation of the training and test sets.
`create` records the pruner in the study; `work` must name the same one.

Every trial, complete or pruned, records the user attributes `elapsed` (the
seconds from the objective's entry to each epoch's report) and
`val_acc_curve` (each epoch's validation accuracy); a complete trial also
its final validation, training and test figures.

The spec's options that shape floodtune's search but not its training
(search.common_seed, epoch_value, early_stopping and the like, a range's
center) are accepted and ignored: this peer runs generic TPE, every trial
with a seed of its own, valued at its last epoch, trained to the end unless
the pruner stops it.

Usage:
  optuna_torch.py create  --spec SPEC --storage URL --study NAME [--pruner P]
  optuna_torch.py work    --spec SPEC --storage URL --study NAME --data DIR --worker I [--pruner P]
  optuna_torch.py summary --storage URL --study NAME

`summary` prints the trials as one JSON object: {"trials": [...], "best":
{...}, "pruner": P, "optuna": VERSION}, each trial shaped as in `floodtune
study trials --format json`.

Each worker process trains on one thread: torch.set_num_threads(1), and,
since Debian's torch multiplies matrices in OpenBLAS, whose threads that call
does not limit, OPENBLAS_NUM_THREADS=1 and OMP_NUM_THREADS=1 (set here unless
the environment sets them).
"""
import argparse
import json
import math
import os
import sys
import time
import warnings

# Before numpy or torch load OpenBLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import optuna  # noqa: E402
import yaml  # noqa: E402

SEARCHED = ("flood_level", "lr", "momentum", "weight_decay")
OPTIMIZERS = ("sgd", "momentum", "adam")
PRUNERS = ("none", "hyperband", "successive_halving")
# A range's keys that only floodtune's search reads.
RANGE_SEARCH_ONLY = {"center", "center_epochs", "estimate"}


class SpecError(Exception):
    pass


class Diverged(Exception):
    """The loss became NaN or infinite; the trial fails, as in floodtune."""


def load_spec(path):
    with open(path) as f:
        spec = yaml.safe_load(f)
    training = spec.get("training") or {}
    search = spec.get("search") or {}
    space = spec.get("space") or {}
    problems = []
    if str(training.get("optimizer", "momentum")).lower() not in OPTIMIZERS:
        problems.append(f"training.optimizer must be one of {', '.join(OPTIMIZERS)}")
    if training.get("flood", "flood") != "flood":
        problems.append("training.flood must be flood (batch flooding)")
    if search.get("sampler", "tpe") != "tpe":
        problems.append("search.sampler must be tpe")
    if search.get("pruner", "none") not in ("none", None):
        problems.append("search.pruner must be none")
    if search.get("objective", "val_acc") != "val_acc":
        problems.append("search.objective must be val_acc")
    if training.get("test_curve"):
        problems.append("training.test_curve is not supported")
    for name, p in space.items():
        if name not in SEARCHED or p.get("type") != "float" or set(p) - {"type", "low", "high", "log"} - RANGE_SEARCH_ONLY:
            problems.append(f"space.{name}: only float ranges (low, high, log) of {', '.join(SEARCHED)} are supported")
    if problems:
        raise SpecError(f"{path}: " + "; ".join(problems))
    return spec


def baseline_params(spec):
    """The plain-training trial of floodtune's study create: flood level 0,
    every other searched option at its fixed value under training, else the
    middle of its range (geometric on a log scale)."""
    training = spec.get("training") or {}
    params = {}
    for name, p in sorted(spec["space"].items()):
        if name == "flood_level":
            params[name] = 0.0
        elif name in training:
            params[name] = float(training[name])
        elif p.get("log"):
            params[name] = math.sqrt(p["low"] * p["high"])
        else:
            params[name] = (p["low"] + p["high"]) / 2
    return params


def trial_seed(study_seed, number):
    """floodtune's search.TrialSeed: FNV-1a 64 of "floodtune/SEED/NUMBER", >> 1."""
    h = 0xCBF29CE484222325
    for byte in f"floodtune/{study_seed}/{number}".encode():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h >> 1


def storage_of(url):
    if url.startswith("sqlite:"):
        # Worker processes wait for each other's writes instead of failing.
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 120}})
    return optuna.storages.RDBStorage(url)


def create(args):
    spec = load_spec(args.spec)
    study = optuna.create_study(study_name=args.study, storage=storage_of(args.storage), direction="maximize")
    study.set_user_attr("pruner", args.pruner)
    search = spec.get("search") or {}
    if "flood_level" in spec["space"] and search.get("baseline", True):
        study.enqueue_trial(baseline_params(spec), user_attrs={"baseline": True})
    print(f"created study {args.study!r}: {search['trials']} trials, searching {', '.join(sorted(spec['space']))}, "
          f"pruner {args.pruner}")


def new_pruner(name, epochs):
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def load_split(data_dir, meta, name):
    m = meta["splits"][name]
    x = np.fromfile(os.path.join(data_dir, m["x"]), dtype="<f4")
    y = np.fromfile(os.path.join(data_dir, m["y"]), dtype="<i4")
    if x.size != m["n"] * meta["features"] or y.size != m["n"]:
        raise SpecError(f"{data_dir}: split {name} does not hold {m['n']} rows")
    return x.reshape(m["n"], meta["features"]), y


def work(args):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    spec = load_spec(args.spec)
    training, search = spec.get("training") or {}, spec["search"]
    with open(os.path.join(args.data, "meta.json")) as f:
        meta = json.load(f)
    if meta["seed"] != search.get("seed", 0) or meta["dataset"] != {k: v for k, v in spec["dataset"].items() if v}:
        raise SpecError(f"{args.data} holds the data of another spec (dataset {meta['dataset']}, seed {meta['seed']})")
    splits = {}
    for name in ("train", "val", "test"):
        x, y = load_split(args.data, meta, name)
        splits[name] = (torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)))
    x_train, y_train = splits["train"]
    n_train = x_train.shape[0]
    widths = [meta["features"], *spec["model"]["hidden"], meta["classes"]]
    batch = int(training.get("batch_size", 128))
    epochs = int(training.get("epochs", 10))
    budget = int(search["trials"])
    study_seed = int(search.get("seed", 0))
    optimizer = str(training.get("optimizer", "momentum")).lower()
    pruning = args.pruner != "none"

    def new_model():
        layers = []
        for i in range(len(widths) - 1):
            layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
            if i + 2 < len(widths):
                layers.append(torch.nn.ReLU())
        return torch.nn.Sequential(*layers)

    @torch.no_grad()
    def evaluate(model, name):
        x, y = splits[name]
        loss, correct = 0.0, 0
        for s in range(0, x.shape[0], 1000):  # floodtune's evaluation batch
            out = model(x[s:s + 1000])
            loss += F.cross_entropy(out, y[s:s + 1000], reduction="sum").item()
            correct += (out.argmax(1) == y[s:s + 1000]).sum().item()
        return loss / x.shape[0], correct / x.shape[0]

    def objective(trial):
        if trial.number >= budget:
            # Another worker started the last trial of the budget at the
            # same moment: give this one up.
            trial.study.stop()
            raise optuna.TrialPruned("over the study's budget")
        t0 = time.perf_counter()
        params = {}
        for name, p in sorted(spec["space"].items()):
            params[name] = trial.suggest_float(name, p["low"], p["high"], log=bool(p.get("log")))
        cfg = {k: float(training[k]) for k in SEARCHED if k in training}
        cfg.update(params)
        b, lr = cfg.get("flood_level", 0.0), cfg["lr"]
        seed = trial_seed(study_seed, trial.number)
        torch.manual_seed(seed)
        model = new_model()
        wd = cfg.get("weight_decay", 0.0)
        if optimizer == "adam":
            opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
        elif optimizer == "sgd":
            opt = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=wd)
        else:
            opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.get("momentum", 0.9), weight_decay=wd)
        shuffle = torch.Generator().manual_seed(seed)
        ascents = steps = 0
        val_acc = val_loss = float("nan")
        elapsed, curve = [], []

        def record(**more):
            """The attributes of every trial: the per-epoch times and
            validation accuracies, and those of its end."""
            attrs = {"elapsed": elapsed, "val_acc_curve": curve, "epochs": len(curve),
                     "seconds": time.perf_counter() - t0, "seed": seed, "worker": args.worker}
            attrs.update(more)
            for k, v in attrs.items():
                trial.set_user_attr(k, v)
            return attrs["seconds"]

        for epoch in range(1, epochs + 1):
            order = torch.randperm(n_train, generator=shuffle)
            for s in range(0, n_train, batch):
                idx = order[s:s + batch]
                xb, yb = x_train.index_select(0, idx), y_train.index_select(0, idx)
                loss = F.cross_entropy(model(xb), yb)
                j = loss.item()
                if not math.isfinite(j):
                    record()
                    raise Diverged(f"diverged at epoch {epoch}: the loss is {j}")
                ascents += j < b
                steps += 1
                opt.zero_grad(set_to_none=True)
                ((loss - b).abs() + b).backward()
                opt.step()
            val_loss, val_acc = evaluate(model, "val")
            if not math.isfinite(val_loss):
                record()
                raise Diverged(f"diverged at epoch {epoch}: the validation loss is {val_loss}")
            elapsed.append(round(time.perf_counter() - t0, 6))
            curve.append(val_acc)
            trial.report(val_acc, epoch)
            if pruning and trial.should_prune():
                seconds = record(val_acc=val_acc, val_loss=val_loss, ascent_fraction=ascents / steps)
                print(f"worker {args.worker}: trial {trial.number} b={b:.4g} lr={lr:.4g} pruned at epoch {epoch} "
                      f"val_acc={val_acc:.4f} {seconds:.1f}s", file=sys.stderr, flush=True)
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")
        train_loss, train_acc = evaluate(model, "train")
        test_loss, test_acc = evaluate(model, "test")
        seconds = record(val_acc=val_acc, val_loss=val_loss, train_loss=train_loss, train_acc=train_acc,
                         test_acc=test_acc, test_loss=test_loss, ascent_fraction=ascents / steps)
        print(f"worker {args.worker}: trial {trial.number} b={b:.4g} lr={lr:.4g} val_acc={val_acc:.4f} "
              f"test_acc={test_acc:.4f} {seconds:.1f}s", file=sys.stderr, flush=True)
        return val_acc

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    sampler = optuna.samplers.TPESampler(seed=study_seed + args.worker, constant_liar=True)
    study = optuna.load_study(study_name=args.study, storage=storage_of(args.storage), sampler=sampler,
                              pruner=new_pruner(args.pruner, epochs))
    created = study.user_attrs.get("pruner", "none")
    if created != args.pruner:
        raise SpecError(f"study {args.study!r} was created with --pruner {created}, not {args.pruner}")
    study.optimize(objective, callbacks=[optuna.study.MaxTrialsCallback(budget, states=None)],
                   catch=(Diverged,), gc_after_trial=False)


def summary(args):
    study = optuna.load_study(study_name=args.study, storage=storage_of(args.storage))

    def iso(t):
        return t.astimezone().isoformat() if t else None

    trials = []
    for t in study.get_trials(deepcopy=False):
        trials.append({
            "number": t.number,
            "state": t.state.name.lower(),
            "value": t.value,
            "params": t.params,
            "intermediate": {str(k): v for k, v in t.intermediate_values.items()},
            "user_attrs": t.user_attrs,
            "datetime_start": iso(t.datetime_start),
            "datetime_complete": iso(t.datetime_complete),
        })
    complete = [t for t in trials if t["state"] == "complete"]
    best = max(complete, key=lambda t: (t["value"], -t["number"])) if complete else None
    json.dump({"trials": trials, "best": best, "pruner": study.user_attrs.get("pruner", "none"),
               "optuna": optuna.__version__}, sys.stdout, indent=2)
    print()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("create", "work", "summary"):
        s = sub.add_parser(name)
        s.add_argument("--storage", required=True, help="an RDB URL, e.g. sqlite:///out/peer/optuna.db")
        s.add_argument("--study", required=True)
        if name != "summary":
            s.add_argument("--spec", required=True, help="the floodtune spec of the study")
            s.add_argument("--pruner", choices=PRUNERS, default="none",
                           help="the study's pruner (default none); work must name create's")
        if name == "work":
            s.add_argument("--data", required=True, help="the directory of `floodtune dataset export --spec SPEC`")
            s.add_argument("--worker", type=int, default=0, help="this process's index: the sampler's seed is search.seed + worker")
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        {"create": create, "work": work, "summary": summary}[args.command](args)
    except (SpecError, OSError) as e:
        print(f"optuna_torch.py: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
