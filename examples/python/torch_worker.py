#!/usr/bin/env python3
"""A floodtune worker in PyTorch, through the HTTP API.

It trains the trials of a study on the data that `floodtune dataset export
--spec SPEC --out DIR` wrote for the study's spec (the same split and the same
noisy labels): an MLP built from the trial's configuration (or from fixed
defaults when the study is not the built-in trainer's), the flooded loss
|J - b| + b with the trial's flood level b, the validation accuracy reported
after every epoch, and the outcome told with the test accuracy. It asks for
trials until the study's budget is spent (or --trials have run).

  floodtune dataset export --spec examples/mnist-noise20.yaml --out out/mnist
  FLOODTUNE_TOKEN=ftk_... python3 torch_worker.py --server http://localhost:8080 \\
      --study mnist-noise20 --data out/mnist

Needs numpy and torch (Debian: python3-torch) and clients/python/floodtune_client.py
(found beside this file or in the repository's clients/python).
"""
import argparse
import json
import math
import os
import signal
import socket
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy and torch load OpenBLAS
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))
from floodtune_client import Client, LeaseLost  # noqa: E402

# The built-in trainer's defaults, for a trial that comes without a configuration.
DEFAULTS = {"hidden": [500, 500], "optimizer": "momentum", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0,
            "batch_size": 128, "epochs": 10}
np = torch = F = None  # imported by main once the arguments are parsed: --help needs neither


def load_data(path):
    with open(os.path.join(path, "meta.json")) as f:
        meta = json.load(f)
    data = {}
    for split in ("train", "val", "test"):
        m = meta["splits"][split]
        x = np.fromfile(os.path.join(path, m["x"]), "<f4").reshape(m["n"], meta["features"])
        y = np.fromfile(os.path.join(path, m["y"]), "<i4").astype(np.int64)
        data[split] = (torch.from_numpy(x), torch.from_numpy(y))
    return meta, data


def trial_config(trial):
    cfg = dict(DEFAULTS)
    if trial.config:
        cfg.update(trial.config)
    else:  # another trainer's study: take the searched options we know
        cfg.update({k: v for k, v in trial.params.items() if k in DEFAULTS})
    cfg["momentum"] = cfg["momentum"] or 0.9  # 0 means 0.9
    return cfg


def new_model(widths):
    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i + 2 < len(widths):
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def new_optimizer(model, cfg):
    lr, wd = cfg["lr"], cfg["weight_decay"]
    if cfg["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
    momentum = cfg["momentum"] if cfg["optimizer"] == "momentum" else 0.0
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=wd)


def flooded_loss(logits, y, b, method):
    if method == "iflood":  # each sample's loss flooded, then the mean
        return ((F.cross_entropy(logits, y, reduction="none") - b).abs() + b).mean()
    return (F.cross_entropy(logits, y) - b).abs() + b  # the minibatch's mean loss flooded


def evaluate(model, x, y):
    """The mean cross-entropy and the accuracy."""
    loss, correct = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(x), 1000):
            out = model(x[s:s + 1000])
            loss += F.cross_entropy(out, y[s:s + 1000], reduction="sum").item()
            correct += (out.argmax(1) == y[s:s + 1000]).sum().item()
    return loss / len(x), correct / len(x)


def run_trial(trial, meta, data):
    cfg = trial_config(trial)
    b, method, batch = trial.flood_level, trial.flood_method, int(cfg["batch_size"])
    torch.manual_seed(trial.seed)
    model = new_model([meta["features"], *cfg["hidden"], meta["classes"]])
    opt = new_optimizer(model, cfg)
    shuffle = torch.Generator().manual_seed(trial.seed)
    x, y = data["train"]
    for epoch in range(1, int(cfg["epochs"]) + 1):
        order = torch.randperm(len(x), generator=shuffle)
        for s in range(0, len(x), batch):
            idx = order[s:s + batch]
            loss = flooded_loss(model(x[idx]), y[idx], b, method)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"the training loss diverged at epoch {epoch}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _, val_acc = evaluate(model, *data["val"])
        if trial.report(epoch, val_acc):  # the study's pruner says stop
            trial.prune(attrs={"val_acc": val_acc, "epochs": epoch, "worker_lang": "python"})
            return f"pruned at epoch {epoch}, val_acc {val_acc:.4f}"
    train_loss, _ = evaluate(model, *data["train"])
    _, test_acc = evaluate(model, *data["test"])
    trial.tell(val_acc, attrs={"test_acc": test_acc, "val_acc": val_acc, "train_loss": train_loss,
                               "worker_lang": "python"})
    return f"val_acc {val_acc:.4f}, test_acc {test_acc:.4f}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", required=True, help="the floodtune server's URL, e.g. http://localhost:8080")
    p.add_argument("--study", required=True, help="the study's name")
    p.add_argument("--data", required=True, help="the directory that `floodtune dataset export` wrote")
    p.add_argument("--token", help="a worker token (default: $FLOODTUNE_TOKEN)")
    p.add_argument("--ca-file", help="the CA certificate of an https server")
    p.add_argument("--worker", default=f"torch@{socket.gethostname()}:{os.getpid()}", help="this worker's name")
    p.add_argument("--trials", type=int, default=0, help="stop after this many trials (default: 0, until the budget is spent)")
    args = p.parse_args()

    global np, torch, F
    import numpy as np
    import torch
    import torch.nn.functional as F

    # SIGTERM (a pod's end, a scheduler) stops like Ctrl-C: the running
    # trial is given back, to be run again by another worker.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    torch.set_num_threads(1)
    meta, data = load_data(args.data)
    client = Client(args.server, token=args.token, ca_file=args.ca_file)
    done = 0
    while args.trials <= 0 or done < args.trials:
        trial = client.ask(args.study, worker=args.worker)
        if trial is None:
            print(f"{args.worker}: the budget of study {args.study} is spent", file=sys.stderr)
            return 0
        try:
            with trial:  # renews the lease; an exception tells the trial failed
                outcome = run_trial(trial, meta, data)
        except FloatingPointError as e:
            outcome = f"failed: {e}"
        except LeaseLost:
            outcome = "lease lost (the server retries the trial)"
        done += 1
        print(f"{args.worker}: trial {trial.number} b={trial.flood_level:.4g} ({trial.flood_method}): {outcome}",
              file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
